"""No input gives a 500: every GET endpoint × every parameter × hostile values (test client)."""

from __future__ import annotations

import pytest

from tests.conftest import auth

ENDPOINTS = [
    "/api/layers", "/api/features/case", "/api/export/case",
    "/api/stats/case", "/api/stats/green_space", "/api/objects/case/1", "/api/objects/case/x",
    "/api/geocode", "/api/reverse", "/api/search", "/api/labels/road", "/api/admin/district",
    "/api/admin/x", "/api/analytics", "/api/analytics/area_counts", "/api/me",
    "/tiles/case/14/13519/6396.pbf", "/tiles/unit_grid/15/27038/12792.pbf",
]  # fmt: skip
PARAMS = ["q", "limit", "bbox", "lon", "lat", "by", "area", "period", "simplify", "parent",
          "status", "reported_at_from", "reported_at_to", "overdue", "layer", "level", "v",
          "kind", "class_code"]  # fmt: skip
VALUES = ["", "a\x00b", "9999-12-31", "-1", "1e309", "nan", "99999999999999999999",
          "180,90,-180,-90", "'; DROP TABLE case_record; --", "%_", "x" * 5000,
          "true,false,maybe", "2024-01-01T25:00", "370102", "reported_at"]  # fmt: skip
SCOPED = ["/api/features/case", "/api/stats/case", "/api/geocode", "/api/reverse", "/api/search",
          "/api/labels/road", "/api/analytics/area_counts"]  # fmt: skip


@pytest.mark.parametrize(("role", "paths"), [("admin", ENDPOINTS), ("district", SCOPED)])
def test_no_parameter_value_gives_a_500(client, role_tokens, role, paths):
    headers = auth(role_tokens, role)
    failures = []
    for path in paths:
        for name in PARAMS:
            for value in VALUES:
                resp = client.get(path, query_string={name: value}, headers=headers)
                if resp.status_code >= 500:
                    failures.append((path, name, value[:20], resp.status_code))
    assert failures == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/objects/case/99999999999999999999999",
        "/tiles/case/99/1/1.pbf",
        "/tiles/case/14/-1/5.pbf",
        "/tiles/no_such/1/1/1.pbf",
        "/api/objects/case/0",
    ],
)
def test_path_values_are_4xx(client, role_tokens, path):
    assert 400 <= client.get(path, headers=auth(role_tokens, "admin")).status_code < 500
