# 城管一张图 — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
# Without DATABASE_URL a project-local PostGIS cluster under var/ is used.
LOCALDB := $(if $(DATABASE_URL),,scripts/localdb.sh start onemap)

.PHONY: run test setup setup-test db stop lint lint-code demo clean-db bench

run: setup db
	$(PY) -m loaders bootstrap
	$(PY) app.py

test: setup-test
	$(MAKE) --no-print-directory lint-code
	$(if $(DATABASE_URL),,scripts/localdb.sh start onemap)
	$(PY) -m pytest $(PYTEST_ARGS)

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --browser

db:
	$(LOCALDB)

stop:
	bash scripts/localdb.sh stop

# Style (ruff) and the layering contracts (import-linter, see pyproject.toml and docs/ARCHITECTURE.md).
lint: setup lint-code

lint-code:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports

# Benchmarks (never part of `make test`): builds or reuses the large demo (onemap_large), runs
# every suite or one (`make bench SUITE=tiles`), writes bench/results.json and docs/PERFORMANCE.md.
bench:
	bash scripts/setup.sh --bench
	$(LOCALDB)
	$(PY) -m bench $(if $(SUITE),--suite $(SUITE))
