"""Settings: the ONEMAP_ prefix, DATABASE_URL and the driver URL conversion."""

from __future__ import annotations

from settings import Settings, to_sqlalchemy_url


def test_plain_url_gets_psycopg_driver():
    assert to_sqlalchemy_url("postgresql://u:p@h:5/d") == "postgresql+psycopg://u:p@h:5/d"
    assert to_sqlalchemy_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert to_sqlalchemy_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("ONEMAP_PORT", "9001")
    monkeypatch.setenv("ONEMAP_HOST", "0.0.0.0")
    monkeypatch.setenv("DATABASE_URL", "postgresql://a:b@db:5432/city")
    s = Settings()
    assert (s.port, s.host) == (9001, "0.0.0.0")
    assert s.sqlalchemy_url() == "postgresql+psycopg://a:b@db:5432/city"
