"""Handler tier: the Flask app in-process (test client) on the demo city, no server process.

Dash callbacks are called through `/_dash-update-component` exactly as the browser calls them, so
what a page callback lets through is checked against the same rules as the JSON API.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from auth.roles import ROLES
from layers.registry import LAYERS
from tests.conftest import auth, district_token

RESTRICTED = [x.id for x in LAYERS if x.restricted]
ROLES_WITHOUT = [r for r, role in ROLES.items() if not role.restricted_layers]
ROLES_WITH = [r for r, role in ROLES.items() if role.restricted_layers]


def one(engine, sql: str, **params):
    """One row of a query as a dict."""
    with engine.connect() as conn:
        return dict(conn.execute(text(sql), params).mappings().one())


def callback(client, headers, outputs, inputs, state=()) -> dict:
    """Call a Dash callback as the browser does; the JSON answer."""
    body = {
        "output": registered_output(client, outputs),
        "outputs": [{"id": i, "property": p} for i, p in outputs]
        if len(outputs) > 1 else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [prop_id(inputs[0][0], inputs[0][1])],
    }  # fmt: skip
    resp = client.post("/_dash-update-component", json=body, headers=headers)
    assert resp.status_code in (200, 204), (resp.status_code, resp.data[:300])
    return resp.get_json() or {}


def prop_id(component_id, prop: str) -> str:
    """How the browser names a changed property (a dict id as compact, sorted JSON)."""
    if isinstance(component_id, dict):
        component_id = json.dumps(component_id, separators=(",", ":"), sort_keys=True)
    return f"{component_id}.{prop}"


def registered_output(client, outputs) -> str:
    """The callback key Dash registered for these outputs (duplicates carry an @hash suffix)."""
    wanted = [f"{i}.{p}" for i, p in outputs]
    for key in client.callback_keys:
        parts = [part.split("@")[0] for part in key.strip(".").split("...")]
        if parts == wanted:
            return key
    raise LookupError(wanted)


def open_archive(client, headers, layer: str, object_id) -> str:
    """The archive panel's content for a clicked object, as text."""
    out = callback(client, headers, [("archive-body", "children"), ("panel-tabs", "value")],
                   [("clicked-object", "data", {"layer": layer, "id": object_id})])  # fmt: skip
    return str(out["response"]["archive-body"]["children"])


@pytest.mark.parametrize("layer", RESTRICTED)
@pytest.mark.parametrize("role", ROLES_WITHOUT)
def test_page_archive_refuses_restricted_layers_like_the_api(client, role_tokens, demo_engine,
                                                             layer, role):  # fmt: skip
    table = next(x for x in LAYERS if x.id == layer).source
    row = one(demo_engine, f'SELECT id, code FROM "{table}" ORDER BY id LIMIT 1')
    shown = open_archive(client, auth(role_tokens, role), layer, row["id"])
    assert "受限" in shown and row["code"] not in shown and "rtsp" not in shown
    api = client.get(f"/api/objects/{layer}/{row['id']}", headers=auth(role_tokens, role))
    assert api.status_code == 403


@pytest.mark.parametrize("role", ROLES_WITH)
def test_page_archive_opens_restricted_layers_for_roles_that_have_them(client, role_tokens,
                                                                       demo_engine, role):  # fmt: skip
    row = one(demo_engine, "SELECT id, code FROM camera ORDER BY id LIMIT 1")
    before = one(demo_engine, "SELECT count(*) n FROM audit_log WHERE action = 'archive_view'")
    shown = open_archive(client, auth(role_tokens, role), "camera", row["id"])
    assert row["code"] in shown
    entry = one(demo_engine, "SELECT count(*) n, max(ip) ip FROM audit_log "
                             "WHERE action = 'archive_view' AND id > 0")  # fmt: skip
    assert entry["n"] == before["n"] + 1 and entry["ip"]  # audited with the caller's address


@pytest.mark.parametrize(
    "bad",
    [
        {"layer": "camera", "id": "1 OR 1=1"},
        {"layer": ["x"], "id": 1},
        {"layer": "case", "id": -5},
        {"layer": "no_such", "id": 1},
    ],
)
def test_page_archive_refuses_malformed_input(client, role_tokens, bad):
    shown = open_archive(client, auth(role_tokens, "admin"), bad["layer"], bad["id"])
    assert "error" in shown


@pytest.mark.parametrize(("lat", "lon", "zoom", "message"), [
    (36.66, 117.05, 10**6, "zoom"), (36.66, 117.05, -1, "zoom"), (360, 117.05, 15, "lat"),
    (36.66, "x", 15, "lon"), (36.66, 117.05, "15; DROP", "zoom")])  # fmt: skip
def test_map_click_validates_every_number(client, role_tokens, lat, lon, zoom, message):
    out = callback(client, auth(role_tokens, "admin"),
                   [("location-body", "children"), ("clicked-object", "data"),
                    ("marker-layer", "children"), ("panel-tabs", "value")],
                   [("onemap-map", "clickData", {"latlng": {"lat": lat, "lng": lon}})],
                   [("map-state", "data", {"layers": {"case": {}}}), ("onemap-map", "zoom", zoom),
                    ("panel-tabs", "value", "stats")])  # fmt: skip
    assert message in str(out["response"]["location-body"]["children"])


@pytest.mark.parametrize(
    ("tab", "switched"), [("stats", True), ("alarms", False), ("parking", False)]
)
def test_a_click_on_an_empty_spot_leaves_panels_that_use_clicks_open(client, role_tokens, tab,
                                                                     switched):  # fmt: skip
    out = callback(client, auth(role_tokens, "admin"),
                   [("location-body", "children"), ("clicked-object", "data"),
                    ("marker-layer", "children"), ("panel-tabs", "value")],
                   [("onemap-map", "clickData", {"latlng": {"lat": 36.0, "lng": 118.5}})],
                   [("map-state", "data", {"layers": {}}), ("onemap-map", "zoom", 15),
                    ("panel-tabs", "value", tab)])  # fmt: skip
    assert ("panel-tabs" in out["response"]) is switched


@pytest.mark.parametrize(
    "body",
    ["{bad json", '{"output": "x.y", "inputs": [1]}', "[]", '{"output": "archive-body.children"}'],
)
def test_malformed_dash_requests_are_400(client, role_tokens, body):
    resp = client.post("/_dash-update-component", data=body, content_type="application/json",
                       headers=auth(role_tokens, "admin"))  # fmt: skip
    assert resp.status_code == 400 and resp.get_json()["error"]


def test_component_suite_traversal_is_404(client, role_tokens):
    for path in ("/_dash-component-suites/dash/../../../app.py",
                 "/_dash-component-suites/dash/..%2F..%2F..%2Fapp.py"):  # fmt: skip
        assert client.get(path, headers=auth(role_tokens, "admin")).status_code == 404


def test_statistics_need_the_analytics_right(client, role_tokens):
    assert (
        client.get("/api/stats/case?by=status", headers=auth(role_tokens, "kiosk")).status_code
        == 403
    )
    assert (
        client.get("/api/stats/case?by=status", headers=auth(role_tokens, "leader")).status_code
        == 200
    )


def test_statistics_by_date_are_grouped_and_capped(client, role_tokens, demo_engine):
    resp = client.get(
        "/api/stats/case?by=reported_at&period=month", headers=auth(role_tokens, "leader")
    )
    body = resp.get_json()
    expected = one(demo_engine, "SELECT count(*) n, count(DISTINCT date_trunc('month', reported_at)) m "
                                "FROM case_record")  # fmt: skip
    assert body["total"] == expected["n"] and len(body["groups"]) == expected["m"]
    assert all(g["value"].endswith("-01") for g in body["groups"])
    days = client.get(
        "/api/stats/case?by=reported_at", headers=auth(role_tokens, "leader")
    ).get_json()
    assert len(days["groups"]) <= 200 and days["total"] == expected["n"]
    bad = client.get(
        "/api/stats/case?by=reported_at&period=hour", headers=auth(role_tokens, "leader")
    )
    assert bad.status_code == 400


def test_bulk_feature_reads_follow_the_export_rule(client, role_tokens, demo_engine):
    small = client.get("/api/features/case?limit=500", headers=auth(role_tokens, "leader"))
    assert small.status_code == 200
    assert (
        client.get("/api/features/case?limit=501", headers=auth(role_tokens, "leader")).status_code
        == 403
    )
    before = one(demo_engine, "SELECT count(*) n FROM audit_log WHERE action = 'bulk_read'")["n"]
    bulk = client.get("/api/features/case?limit=2000", headers=auth(role_tokens, "planner"))
    assert bulk.status_code == 200 and bulk.get_json()["numberReturned"] > 500
    after = one(demo_engine, "SELECT count(*) n, max(detail->>'rows') r FROM audit_log "
                             "WHERE action = 'bulk_read'")  # fmt: skip
    assert after["n"] == before + 1 and int(after["r"]) == bulk.get_json()["numberReturned"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/objects/case/1",
        "/api/export/case?bbox=117.0,36.6,117.001,36.601",
        "/api/me",
        "/api/admin/audit",
        "/api/features/case?limit=1",
    ],
)
def test_private_json_is_never_stored(client, role_tokens, path):
    resp = client.get(path, headers=auth(role_tokens, "admin"))
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"


def test_tiles_that_depend_on_the_user_are_private(client, role_tokens, demo_engine, places_tile):
    z, x, y = places_tile
    shared = client.get(f"/tiles/component_01/{z}/{x}/{y}.pbf", headers=auth(role_tokens, "admin"))
    assert shared.headers["Cache-Control"].startswith("public")
    camera = client.get(f"/tiles/camera/{z}/{x}/{y}.pbf", headers=auth(role_tokens, "admin"))
    assert camera.headers["Cache-Control"].startswith("private")
    scoped = client.get(
        f"/tiles/component_01/{z}/{x}/{y}.pbf", headers=auth(role_tokens, "district")
    )
    assert scoped.status_code in (200, 204, 403)
    if scoped.status_code != 403:
        assert scoped.headers["Cache-Control"].startswith("private")


@pytest.fixture(scope="module")
def places_tile(demo_engine) -> tuple[int, int, int]:
    """A z14 tile inside the district user's street (the first street)."""
    from tests.conftest import tile_of

    row = one(demo_engine, "SELECT ST_X(p) lon, ST_Y(p) lat FROM (SELECT ST_PointOnSurface(geom) p "
                           "FROM admin_area WHERE level = 'street' ORDER BY code LIMIT 1) s")  # fmt: skip
    return (14, *tile_of(row["lon"], row["lat"], 14))


def test_code_search_is_scoped_before_its_limit(client, role_tokens, demo_engine):
    street = one(demo_engine, "SELECT code FROM admin_area WHERE level = 'street' ORDER BY code "
                              "OFFSET 1 LIMIT 1")["code"]  # fmt: skip
    inside = one(demo_engine, "SELECT count(*) n FROM component c WHERE c.code LIKE '370102%' AND "
                              "ST_Intersects(c.geom, (SELECT geom FROM admin_area WHERE code = :s))",
                 s=street)["n"]  # fmt: skip
    first_ten = one(demo_engine, "SELECT count(*) n FROM (SELECT geom FROM component WHERE code LIKE "
                                 "'370102%' ORDER BY code LIMIT 10) c WHERE ST_Intersects(c.geom, "
                                 "(SELECT geom FROM admin_area WHERE code = :s))", s=street)["n"]  # fmt: skip
    assert inside > 10 and first_ten < 10  # the old filter-after-limit would miss most of them
    token = district_token(demo_engine, street)
    hits = client.get(
        "/api/search?q=370102", headers={"Authorization": f"Bearer {token}"}
    ).get_json()
    components = [h for h in hits["results"] if h["kind"] == "component"]
    assert len(components) == 10
    ids = [h["id"] for h in components]
    outside = one(demo_engine, "SELECT count(*) n FROM component WHERE id = ANY(:ids) AND NOT "
                               "ST_Intersects(geom, (SELECT geom FROM admin_area WHERE code = :s))",
                  ids=ids, s=street)["n"]  # fmt: skip
    assert outside == 0


def test_pages_embed_no_restricted_metadata(client, role_tokens):
    page = client.get("/", headers={**auth(role_tokens, "admin"), "Accept": "text/html"})
    config = page.get_data(as_text=True).split('id="_dash-config"', 1)[1].split("</script>", 1)[0]
    assert "validation_layout" not in config  # embedded for the browser's check in debug mode only
    assert "stream_url" not in config and "/tiles/camera/" not in config
    assert len(page.get_data()) < 20_000  # the page itself is small: the layout comes separately


def layout_ids(node, found: list) -> list:
    """Every component id in a layout tree (dash-leaflet components hold children too)."""
    if isinstance(node, list | tuple):
        for child in node:
            layout_ids(child, found)
    elif hasattr(node, "to_plotly_json"):
        if getattr(node, "id", None) is not None:
            found.append(node.id)
        layout_ids(getattr(node, "children", None), found)
    return found


def test_every_callback_id_is_in_the_validation_layout(dash_app):
    """Dash checks callback ids against the layout in the browser only in debug mode; here every
    fixed id of every callback of every page, lazily built tabs included, is looked up in the
    layout the app validates with (ids with ALL/MATCH may match nothing until data arrives)."""
    ids = {json.dumps(i, sort_keys=True) if isinstance(i, dict) else i
           for i in layout_ids(dash_app.validation_layout, [])}  # fmt: skip
    missing = []
    for key, cb in dash_app.callback_map.items():
        outputs = [o.rsplit(".", 1)[0].split("@")[0] for o in key.strip(".").split("...")]
        for dep in [*outputs, *(d["id"] for d in cb["inputs"] + cb["state"])]:
            fixed = json.loads(dep) if dep.startswith("{") else dep
            if isinstance(fixed, dict):
                if any(isinstance(v, list) for v in fixed.values()):
                    continue  # a wildcard
                fixed = json.dumps(fixed, sort_keys=True)
            if fixed not in ids:
                missing.append((key[:60], dep))
    assert not missing, missing
    assert {"al-interval", "dr-code", "an-draw"} <= ids  # built on opening their tabs


def test_analysis_panel_runs_coverage_and_what_if(client, role_tokens, demo_engine):
    headers = auth(role_tokens, "planner")
    out = callback(client, headers, [("an-result", "children"), ("an-uncovered", "data")],
                   [("an-run", "n_clicks", 1)],
                   [("an-facility", "value", "park"), ("an-mode", "value", "euclidean"),
                    ("an-rules", "value", "5000:500,2000:300,1000:300:h"), ("area-value", "data", None),
                    ("an-drawn-area", "data", None)])  # fmt: skip
    shown = str(out["response"]["an-result"]["children"])
    api = client.get("/api/analytics/park-coverage", headers=headers).get_json()["result"]
    assert f"{api['coverage_pct']:.2f}%" in shown and "步行路网覆盖率" in shown
    assert out["response"]["an-uncovered"]["data"]["type"] == "FeatureCollection"
    park = one(demo_engine, "SELECT ST_AsGeoJSON(ST_Transform(ST_Buffer(ST_Centroid(geom)::geography, 60)"
                            "::geometry, 4326))::json g FROM land_parcel WHERE land_use LIKE 'R%' "
                            "ORDER BY id LIMIT 1")["g"]  # fmt: skip
    drawn = {"type": "FeatureCollection", "features": [{"type": "Feature", "geometry": park,
                                                        "properties": {}}]}  # fmt: skip
    out = callback(client, headers, [("an-what-if", "children"), ("an-newly", "data"),
                                     ("an-drawn-area", "data")],
                   [("an-draw", "geojson", drawn)],
                   [("an-draw-purpose", "value", "what-if"), ("an-mode", "value", "euclidean"),
                    ("an-rules", "value", ""), ("area-value", "data", None)])  # fmt: skip
    assert "覆盖率" in str(out["response"]["an-what-if"]["children"])
    assert out["response"]["an-newly"]["data"]["type"] == "FeatureCollection"
    refused = callback(client, auth(role_tokens, "kiosk"), [("an-result", "children"), ("an-uncovered", "data")],
                       [("an-run", "n_clicks", 1)],
                       [("an-facility", "value", "park"), ("an-mode", "value", "euclidean"),
                        ("an-rules", "value", ""), ("area-value", "data", None),
                        ("an-drawn-area", "data", None)])  # fmt: skip
    assert "不能使用统计分析" in str(refused["response"]["an-result"]["children"])
    area = callback(client, headers, [("an-what-if", "children"), ("an-newly", "data"),
                                      ("an-drawn-area", "data")],
                    [("an-draw", "geojson", drawn)],
                    [("an-draw-purpose", "value", "area"), ("an-mode", "value", "euclidean"),
                     ("an-rules", "value", ""), ("area-value", "data", None)])  # fmt: skip
    assert area["response"]["an-drawn-area"]["data"] == park  # kept for the next run
    ran = callback(client, headers, [("an-result", "children"), ("an-uncovered", "data")],
                   [("an-run", "n_clicks", 2)],
                   [("an-facility", "value", "park"), ("an-mode", "value", "euclidean"),
                    ("an-rules", "value", ""), ("area-value", "data", None),
                    ("an-drawn-area", "data", park)])  # fmt: skip
    assert "绘制范围" in str(ran["response"]["an-result"]["children"])


def test_nul_bytes_in_the_sign_in_form_are_refused_cleanly(client):
    form = client.get("/login").get_data(as_text=True)
    csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
    resp = client.post("/login", data={"username": "ad\x00min", "password": "x\x00y", "csrf_token": csrf},
                       headers={"Origin": "http://localhost"})  # fmt: skip
    assert 400 <= resp.status_code < 500


def test_analysis_panel_draws_camera_blind_roads_for_roles_with_cameras(client, role_tokens):
    inputs = [("an-facility", "value", "camera"), ("an-mode", "value", "euclidean"),
              ("an-rules", "value", ""), ("area-value", "data", None), ("an-drawn-area", "data", None)]  # fmt: skip
    out = callback(client, auth(role_tokens, "leader"), [("an-result", "children"), ("an-uncovered", "data")],
                   [("an-run", "n_clicks", 1)], inputs)  # fmt: skip
    blind = out["response"]["an-uncovered"]["data"]["features"]
    assert blind and {f["geometry"]["type"] for f in blind} <= {"LineString", "MultiLineString"}
    refused = callback(client, auth(role_tokens, "planner"), [("an-result", "children"), ("an-uncovered", "data")],
                       [("an-run", "n_clicks", 1)], inputs)  # fmt: skip
    assert "受限" in str(refused["response"]["an-result"]["children"])


def inside_street(engine, street: str, lon: float, lat: float) -> bool:
    """Whether a point lies in the street (boundary included, as the scope rule says)."""
    return one(engine, "SELECT ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4490)) i "
                       "FROM admin_area WHERE code = :s", x=lon, y=lat, s=street)["i"]  # fmt: skip


@pytest.fixture(scope="module")
def district_street(demo_engine) -> str:
    """The street the test district user is limited to (the first street, see conftest)."""
    return one(demo_engine, "SELECT code FROM admin_area WHERE level = 'street' ORDER BY code "
                            "LIMIT 1")["code"]  # fmt: skip


def test_related_cases_stay_inside_a_district_users_areas(client, role_tokens, demo_engine,
                                                          district_street):  # fmt: skip
    pair = one(demo_engine, """
        SELECT k.id AS component, left(k.class_code, 2) AS major, r.code AS outside_case
        FROM component k JOIN admin_area a ON a.code = :s AND ST_Within(k.geom, a.geom)
        JOIN case_record r ON NOT ST_Intersects(r.geom, a.geom) AND ST_DWithin(k.geom, r.geom, 0.0004)
             AND ST_DWithin(k.geom::geography, r.geom::geography, 30)
        ORDER BY k.id LIMIT 1""", s=district_street)  # fmt: skip
    path = f"/api/objects/component_{pair['major']}/{pair['component']}"
    admin = client.get(path, headers=auth(role_tokens, "admin")).get_json()["related_cases"]
    assert pair["outside_case"] in {c["code"] for c in admin}  # the case exists and is related
    mine = client.get(path, headers=auth(role_tokens, "district")).get_json()["related_cases"]
    assert pair["outside_case"] not in {c["code"] for c in mine}
    assert all(inside_street(demo_engine, district_street, c["lon"], c["lat"]) for c in mine)


def test_nearest_address_and_road_labels_stay_inside(client, role_tokens, demo_engine,
                                                     district_street):  # fmt: skip
    spot = one(demo_engine, """
        SELECT ST_X(p.pt) lon, ST_Y(p.pt) lat FROM admin_area a
        CROSS JOIN LATERAL (SELECT ST_ClosestPoint(ST_Buffer(a.geom, -0.00005), g.geom) AS pt FROM geocode g
                            WHERE NOT ST_Intersects(g.geom, a.geom)
                            ORDER BY g.geom <-> a.geom LIMIT 20) p
        CROSS JOIN LATERAL (SELECT n.geom FROM geocode n ORDER BY n.geom <-> p.pt LIMIT 1) n
        WHERE a.code = :s AND NOT ST_Intersects(n.geom, a.geom) LIMIT 1""", s=district_street)  # fmt: skip
    where = {"lon": spot["lon"], "lat": spot["lat"]}
    admin = client.get(
        "/api/reverse", query_string=where, headers=auth(role_tokens, "admin")
    ).get_json()
    near = admin["nearest_address"]
    assert not inside_street(demo_engine, district_street, near["lon"], near["lat"])  # precondition
    mine = client.get("/api/reverse", query_string=where,
                      headers=auth(role_tokens, "district")).get_json()["nearest_address"]  # fmt: skip
    assert inside_street(demo_engine, district_street, mine["lon"], mine["lat"])
    bbox = f"{spot['lon'] - 0.01},{spot['lat'] - 0.01},{spot['lon'] + 0.01},{spot['lat'] + 0.01}"
    everyone = client.get("/api/labels/road", query_string={"bbox": bbox},
                          headers=auth(role_tokens, "admin")).get_json()["labels"]  # fmt: skip
    assert any(
        not inside_street(demo_engine, district_street, x["lon"], x["lat"]) for x in everyone
    )
    labels = client.get("/api/labels/road", query_string={"bbox": bbox},
                        headers=auth(role_tokens, "district")).get_json()["labels"]  # fmt: skip
    assert labels and all(
        inside_street(demo_engine, district_street, x["lon"], x["lat"]) for x in labels
    )
