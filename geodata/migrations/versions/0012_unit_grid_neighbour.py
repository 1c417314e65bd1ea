"""单元网格邻接: the queen contiguity of the unit grids, kept in the database.

`unit_grid_neighbour` holds every ordered pair (grid_id, neighbour_id) of two unit grids whose
boundaries share a vertex (exactly equal x and y of the stored EPSG:4490 coordinates, any ring,
any part), in both directions, never a grid with itself. That is PySAL's `Queen` criterion (a
vertex in common), and a transformation to a metric CRS maps equal coordinates to equal ones, so
the pairs are PySAL's `Queen.from_dataframe` on the cells in the analyses' metric CRS. The Gi*
hotspots and the emerging hotspots read the pairs of an extent's unit grids instead of computing
the contiguity in Python on every first run (issue #12: 1–1.4 s of the 3.95 s first run on a
district of 11,661 grids).

Kept by statement-level triggers on `unit_grid` (insert, update, delete with transition tables;
truncate empties it): a statement's changed grids (inserted, deleted, or whose geometry changed)
lose their pairs, then get them again from the grids whose bounding box meets theirs (a shared
vertex implies that). `unit_grid_neighbour_rebuild()` recomputes everything set-based (the
upgrade fills the table that way).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLE = """
CREATE TABLE unit_grid_neighbour (
  grid_id bigint NOT NULL,
  neighbour_id bigint NOT NULL,
  CONSTRAINT pk_unit_grid_neighbour PRIMARY KEY (grid_id, neighbour_id)
)"""


def vertices(grids: str) -> str:
    """SQL: the vertices (id, x, y) of the grids of `grids` (a relation with id and geom)."""
    return f"""SELECT g.id, ST_X(d.geom) AS x, ST_Y(d.geom) AS y
                FROM {grids} g, ST_DumpPoints(g.geom) d"""


def shared(mine: str, near: str) -> str:
    """SQL: the pairs (a, b), a among the vertices of `mine`, b among those of `near`, sharing a
    vertex (a <> b, each pair once)."""
    return f"""SELECT DISTINCT a.id AS a, b.id AS b
                FROM ({mine}) a JOIN ({near}) b ON a.x = b.x AND a.y = b.y AND a.id <> b.id"""


REBUILD = f"""
CREATE FUNCTION unit_grid_neighbour_rebuild() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  LOCK TABLE unit_grid IN SHARE MODE;
  PERFORM set_config('work_mem', '256MB', true);
  TRUNCATE unit_grid_neighbour;
  INSERT INTO unit_grid_neighbour (grid_id, neighbour_id)
  WITH v AS MATERIALIZED ({vertices("unit_grid")})
  {shared("TABLE v", "TABLE v")}
  ORDER BY 1, 2;
END $fn$"""

# {changed}: SQL of the ids of the grids the statement changed, from its transition tables.
REFRESH = f"""
  DELETE FROM unit_grid_neighbour n USING unit_grid_neighbour o
  WHERE o.grid_id IN ({{changed}}) AND n.grid_id = o.neighbour_id AND n.neighbour_id = o.grid_id;
  DELETE FROM unit_grid_neighbour WHERE grid_id IN ({{changed}});
  INSERT INTO unit_grid_neighbour (grid_id, neighbour_id)
  WITH mine AS MATERIALIZED (SELECT id, geom FROM unit_grid WHERE id IN ({{changed}})),
  near AS MATERIALIZED (
    SELECT id, geom FROM unit_grid
    WHERE id IN (SELECT g.id FROM mine m JOIN unit_grid g ON g.geom && m.geom)),
  pair AS ({shared(vertices("mine"), vertices("near"))})
  SELECT a, b FROM pair UNION SELECT b, a FROM pair;"""

CHANGED = {
    "insert": "SELECT id FROM new_rows",
    "delete": "SELECT id FROM old_rows",
    # an update changes the pairs only when it moves a vertex (or the id)
    "update": "SELECT n.id FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id "
    "WHERE o.id IS NULL OR ST_AsBinary(o.geom) IS DISTINCT FROM ST_AsBinary(n.geom) "
    "UNION SELECT o.id FROM old_rows o WHERE o.id NOT IN (SELECT id FROM new_rows)",
}
REFERENCING = {
    "insert": "NEW TABLE AS new_rows",
    "delete": "OLD TABLE AS old_rows",
    "update": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
}


def trigger_function(event: str) -> str:
    """SQL: the statement trigger function refreshing the pairs of the grids an `event` changed."""
    return f"""
CREATE FUNCTION unit_grid_neighbour_on_{event}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  {REFRESH.replace("{changed}", CHANGED[event])}
  RETURN NULL;
END $fn$"""


ON_TRUNCATE = """
CREATE FUNCTION unit_grid_neighbour_on_truncate() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  TRUNCATE unit_grid_neighbour;
  RETURN NULL;
END $fn$"""


def triggers() -> list[str]:
    """SQL: the four statement triggers on unit_grid."""
    out = [
        f"CREATE TRIGGER unit_grid_neighbour_{event} AFTER {event.upper()} ON unit_grid "
        f"REFERENCING {REFERENCING[event]} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION unit_grid_neighbour_on_{event}()"
        for event in CHANGED
    ]
    out.append(
        "CREATE TRIGGER unit_grid_neighbour_truncate AFTER TRUNCATE ON unit_grid "
        "FOR EACH STATEMENT EXECUTE FUNCTION unit_grid_neighbour_on_truncate()"
    )
    return out


def upgrade() -> None:
    """The table, its functions and triggers, filled from the grids already loaded."""
    op.execute(TABLE)
    for body in (REBUILD, ON_TRUNCATE, *(trigger_function(e) for e in CHANGED)):
        op.execute(body)
    for trigger in triggers():
        op.execute(trigger)
    op.execute("SELECT unit_grid_neighbour_rebuild()")
    op.execute("ANALYZE unit_grid_neighbour")


def downgrade() -> None:
    """Drop the triggers, functions and table."""
    for event in (*CHANGED, "truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS unit_grid_neighbour_{event} ON unit_grid")
        op.execute(f"DROP FUNCTION IF EXISTS unit_grid_neighbour_on_{event}()")
    op.execute("DROP FUNCTION IF EXISTS unit_grid_neighbour_rebuild()")
    op.execute("DROP TABLE IF EXISTS unit_grid_neighbour")
