"""Views the layer registry and the analytics read (no sub-queries inside the registry).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

VIEWS = {
    # 部件 with the name of its class.
    "component_view": """
        SELECT c.*, k.name AS class_name FROM component c
        LEFT JOIN component_class k ON k.code = c.class_code""",
    # 停车场 with its latest occupancy reading and a level (空闲 / 较满 / 紧张 / 无数据).
    "parking_lot_status": """
        SELECT l.*, o.occupied, o.observed_at,
               round(o.occupied::numeric / l.capacity, 2)::float AS occupancy,
               CASE WHEN o.occupied IS NULL THEN '无数据'
                    WHEN o.occupied >= 0.9 * l.capacity THEN '紧张'
                    WHEN o.occupied >= 0.6 * l.capacity THEN '较满' ELSE '空闲' END AS occupancy_level
        FROM parking_lot l LEFT JOIN LATERAL (
          SELECT occupied, observed_at FROM parking_occupancy p
          WHERE p.lot_id = l.id ORDER BY observed_at DESC LIMIT 1) o ON true""",
    # 告警 not yet cleared, at the position of its sensor.
    "active_alarm": """
        SELECT a.id, a.raised_at, a.level, a.message, a.state, s.code, s.kind, s.geom
        FROM alarm a JOIN sensor s ON s.id = a.sensor_id WHERE a.state <> '已解除'""",
    # 案件 with the name of its event or component class.
    "case_view": """
        SELECT c.*, coalesce(e.name, k.name) AS class_name FROM case_record c
        LEFT JOIN event_class e ON e.code = c.event_class_code
        LEFT JOIN component_class k ON k.code = c.component_class_code""",
}


def upgrade() -> None:
    """Create the views."""
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    """Drop the views."""
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
