"""ORM models of the city (GeoAlchemy2). All geometries in CGCS2000 (EPSG:4490) with a GiST index.

Rules the database itself enforces (check constraints, typmods, foreign keys): code formats,
geometry type and SRID, valid geometries, coordinates within the geographic range, stage order.
"""

from __future__ import annotations

from datetime import date, datetime
from itertools import pairwise

from geoalchemy2 import Geometry
from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from geodata import catalog

SRID = catalog.SRID

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with deterministic constraint names."""

    metadata = MetaData(naming_convention=NAMING)


def geometry(kind: str, *, nullable: bool = False) -> Mapped:
    """A geometry column of one type in EPSG:4490 with a GiST index."""
    return mapped_column(Geometry(kind, srid=SRID, spatial_index=True), nullable=nullable)


def one_of(column: str, values) -> str:
    """SQL for `column IN (...)` over a fixed code list."""
    quoted = ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)
    return f"{column} IN ({quoted})"


def geometry_checks(column: str = "geom", *, check_valid: bool = True) -> tuple:
    """Constraints every geometry gets: valid (OGC) and inside lon/lat range of a geographic CRS."""
    in_range = (
        f"{column} IS NULL OR (ST_XMin({column}) >= -180 AND ST_XMax({column}) <= 180 "
        f"AND ST_YMin({column}) >= -90 AND ST_YMax({column}) <= 90)"
    )
    checks = [CheckConstraint(in_range, name=f"{column}_in_range")]
    if check_valid:
        checks.append(
            CheckConstraint(f"{column} IS NULL OR ST_IsValid({column})", name=f"{column}_valid")
        )
    return tuple(checks)


def id_column() -> Mapped[int]:
    """Surrogate bigint identity key (the id of /api/objects/<layer>/<id>)."""
    return mapped_column(BigInteger, Identity(), primary_key=True)


def area_column() -> Mapped[float]:
    """Geodesic area in m2, computed by the database from the polygon."""
    return mapped_column(Double, Computed("ST_Area(geom::geography)", persisted=True))


def admin_code_rule() -> str:
    """SQL: an area's code has its level's length (a city code is as long as a district's)."""
    lengths = {"city": catalog.ADMIN_CODE_LENGTHS["district"], **catalog.ADMIN_CODE_LENGTHS}
    return " OR ".join(f"(level = '{level}' AND code ~ '^[0-9]{{{n}}}$')"
                       for level, n in lengths.items())  # fmt: skip


# --- classes (code lists) -------------------------------------------------------------------


class ComponentClass(Base):
    """部件小类 with its 大类 (GB/T 30428.2; 4-digit, or 5-digit under GB/T 47678.5)."""

    __tablename__ = "component_class"
    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    major_code: Mapped[str] = mapped_column(String(2))
    major_name: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(40))
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{4,5}$' AND left(code, 2) = major_code", name="code"),
    )


class EventClass(Base):
    """事件小类 with its 大类."""

    __tablename__ = "event_class"
    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    major_code: Mapped[str] = mapped_column(String(2))
    major_name: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(40))
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9]{4,5}$' AND left(code, 2) = major_code", name="code"),
    )


# --- administrative areas and grids ---------------------------------------------------------


class AdminArea(Base):
    """行政区划: city (市), district (区县, GB/T 2260), street (街道), community (社区)."""

    __tablename__ = "admin_area"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(12), unique=True)
    level: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(60))
    parent_code: Mapped[str | None] = mapped_column(
        ForeignKey("admin_area.code", ondelete="CASCADE"), index=True
    )
    area_m2: Mapped[float] = area_column()
    geom = geometry("MULTIPOLYGON")
    __table_args__ = (
        CheckConstraint(admin_code_rule(), name="code_level"),
        CheckConstraint(
            "parent_code IS NULL "
            "OR (level = 'district' AND left(code, 4) = left(parent_code, 4)) "
            "OR (level IN ('street', 'community') AND left(code, length(parent_code)) = parent_code)",
            name="parent_prefix",
        ),
        *geometry_checks(),
    )


class UnitGrid(Base):
    """单元网格 (GB/T 30428.1): 15-digit code = community (12) + sequence (3); 14 digits accepted."""

    __tablename__ = "unit_grid"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(20), unique=True)
    community_code: Mapped[str] = mapped_column(ForeignKey("admin_area.code"), index=True)
    area_m2: Mapped[float] = area_column()
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    responsible_unit: Mapped[str | None] = mapped_column(String(100))
    geom = geometry("MULTIPOLYGON")
    __table_args__ = (
        CheckConstraint(
            "code ~ '^[0-9]{14,15}$' AND left(code, 12) = community_code", name="code"
        ),
        CheckConstraint("end_date IS NULL OR start_date IS NULL OR end_date >= start_date",
                        name="dates"),
        *geometry_checks(),
    )  # fmt: skip


class ResponsibilityGrid(Base):
    """责任网格 / 处置网格 at the levels 市/区/街道/社区."""

    __tablename__ = "responsibility_grid"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    level: Mapped[str] = mapped_column(String(10))
    department: Mapped[str | None] = mapped_column(String(100))
    person: Mapped[str | None] = mapped_column(String(50))
    area_code: Mapped[str | None] = mapped_column(ForeignKey("admin_area.code"), index=True)
    geom = geometry("MULTIPOLYGON")
    __table_args__ = (
        CheckConstraint(one_of("kind", catalog.GRID_KINDS), name="kind"),
        CheckConstraint(one_of("level", catalog.GRID_LEVELS), name="level"),
        *geometry_checks(),
    )


class Geocode(Base):
    """地理编码 (GB/T 30428.3): a standard address point with its parts."""

    __tablename__ = "geocode"
    id: Mapped[int] = id_column()
    address: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(10))
    road_name: Mapped[str | None] = mapped_column(String(60))
    door_number: Mapped[str | None] = mapped_column(String(20))
    building: Mapped[str | None] = mapped_column(String(40))
    poi_name: Mapped[str | None] = mapped_column(String(100))
    district_code: Mapped[str | None] = mapped_column(ForeignKey("admin_area.code"))
    street_code: Mapped[str | None] = mapped_column(ForeignKey("admin_area.code"))
    community_code: Mapped[str | None] = mapped_column(ForeignKey("admin_area.code"), index=True)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("unit_grid.code"), index=True)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint(one_of("kind", catalog.GEOCODE_KINDS), name="kind"),
        CheckConstraint("length(btrim(address)) > 0", name="address"),
        Index("ix_geocode_address_trgm", "address", postgresql_using="gin",
              postgresql_ops={"address": "gin_trgm_ops"}),
        *geometry_checks(),
    )  # fmt: skip


# --- components and cases -------------------------------------------------------------------


class Component(Base):
    """管理部件: code = district (6) + class (4 or 5) + serial (6), GB/T 30428.2 attributes."""

    __tablename__ = "component"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(20), unique=True)
    class_code: Mapped[str] = mapped_column(ForeignKey("component_class.code"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    department: Mapped[str | None] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(100))
    maintainer: Mapped[str | None] = mapped_column(String(100))
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("unit_grid.code"), index=True)
    status: Mapped[str] = mapped_column(String(4), server_default="完好", index=True)
    initial_date: Mapped[date | None] = mapped_column(Date)
    change_date: Mapped[date | None] = mapped_column(Date)
    data_source: Mapped[str | None] = mapped_column(String(10))
    remark: Mapped[str | None] = mapped_column(Text)
    photo_url: Mapped[str | None] = mapped_column(Text)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint(
            "code ~ '^[0-9]{16,17}$' AND length(code) = 12 + length(class_code) "
            "AND substr(code, 7, length(class_code)) = class_code",
            name="code",
        ),
        CheckConstraint(one_of("status", catalog.COMPONENT_STATUSES), name="status"),
        CheckConstraint(
            "data_source IS NULL OR " + one_of("data_source", catalog.DATA_SOURCES),
            name="data_source",
        ),
        CheckConstraint(
            "change_date IS NULL OR initial_date IS NULL OR change_date >= initial_date",
            name="dates",
        ),
        *geometry_checks(),
    )


STAGES = catalog.CASE_STAGES


def stage_order_checks() -> tuple:
    """Each recorded stage is no earlier than the stage before it."""
    return tuple(
        CheckConstraint(f"{b} IS NULL OR {a} IS NULL OR {b} >= {a}", name=f"{b}_order")
        for a, b in pairwise(STAGES)
    )


class Case(Base):
    """案件: an event (事件) or component (部件) problem and its stages from report to closure."""

    __tablename__ = "case_record"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(4))
    event_class_code: Mapped[str | None] = mapped_column(ForeignKey("event_class.code"), index=True)
    component_class_code: Mapped[str | None] = mapped_column(
        ForeignKey("component_class.code"), index=True
    )
    source: Mapped[str] = mapped_column(String(10))
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("unit_grid.code"), index=True)
    component_id: Mapped[int | None] = mapped_column(
        ForeignKey("component.id", ondelete="SET NULL"), index=True
    )
    reported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    registered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    department: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(4), index=True)
    overdue: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # 返工次数: times the 核查 sent the case back to 处置 (migration 0007).
    rework_count: Mapped[int] = mapped_column(Integer, server_default="0")
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint("code ~ '^[0-9A-Za-z_-]{4,32}$'", name="code"),
        CheckConstraint("rework_count >= 0", name="rework_count"),
        CheckConstraint(
            "(kind = '事件' AND event_class_code IS NOT NULL AND component_class_code IS NULL) OR "
            "(kind = '部件' AND component_class_code IS NOT NULL AND event_class_code IS NULL)",
            name="kind_class",
        ),
        CheckConstraint(one_of("source", catalog.CASE_SOURCES), name="source"),
        CheckConstraint(one_of("status", catalog.CASE_STATUSES), name="status"),
        CheckConstraint("deadline IS NULL OR deadline >= reported_at", name="deadline"),
        *stage_order_checks(),
        *geometry_checks(),
    )  # fmt: skip


# --- base map: roads, land use, green space -------------------------------------------------


class Road(Base):
    """道路中心线 with name and class."""

    __tablename__ = "road"
    id: Mapped[int] = id_column()
    name: Mapped[str | None] = mapped_column(String(60), index=True)
    road_class: Mapped[str] = mapped_column(String(10))
    width_m: Mapped[float | None] = mapped_column(Double)
    geom = geometry("MULTILINESTRING")
    __table_args__ = (
        CheckConstraint(one_of("road_class", catalog.ROAD_CLASSES), name="road_class"),
        CheckConstraint("width_m IS NULL OR width_m > 0", name="width"),
        *geometry_checks(),
    )


class LandParcel(Base):
    """用地地块 (GB 50137 class); residential (R 居住用地) parcels carry population where known."""

    __tablename__ = "land_parcel"
    id: Mapped[int] = id_column()
    code: Mapped[str | None] = mapped_column(String(32), unique=True)
    land_use: Mapped[str] = mapped_column(String(4), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    population: Mapped[int | None] = mapped_column(Integer)
    area_m2: Mapped[float] = area_column()
    geom = geometry("MULTIPOLYGON")
    __table_args__ = (
        CheckConstraint(
            "left(land_use, 1) IN (" + ", ".join(f"'{k}'" for k in catalog.LAND_USES) + ")",
            name="land_use",
        ),
        CheckConstraint("population IS NULL OR population >= 0", name="population"),
        *geometry_checks(),
    )


class GreenSpace(Base):
    """公园与绿地 (CJJ/T 85-2017 城市绿地分类), with the historic-district flag and entrances."""

    __tablename__ = "green_space"
    id: Mapped[int] = id_column()
    code: Mapped[str | None] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(4), index=True)
    historic_district: Mapped[bool] = mapped_column(Boolean, server_default="false")
    area_m2: Mapped[float] = area_column()
    geom = geometry("MULTIPOLYGON")
    entrances = geometry("MULTIPOINT", nullable=True)
    __table_args__ = (
        CheckConstraint(one_of("kind", catalog.GREEN_KINDS), name="kind"),
        *geometry_checks(),
        *geometry_checks("entrances", check_valid=False),
    )


# --- drainage (排水) -------------------------------------------------------------------------


class DrainWell(Base):
    """检查井 / 雨水箅子 of the drainage network."""

    __tablename__ = "drain_well"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    pipe_kind: Mapped[str] = mapped_column(String(4))
    ground_level_m: Mapped[float | None] = mapped_column(Double)
    invert_level_m: Mapped[float | None] = mapped_column(Double)
    depth_m: Mapped[float | None] = mapped_column(Double)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint(one_of("pipe_kind", catalog.PIPE_KINDS), name="pipe_kind"),
        CheckConstraint("depth_m IS NULL OR depth_m >= 0", name="depth"),
        *geometry_checks(),
    )


class DrainPipe(Base):
    """排水管线: drawn in the direction of flow, from `from_well` to `to_well`."""

    __tablename__ = "drain_pipe"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(4), index=True)
    diameter_mm: Mapped[int] = mapped_column(Integer)
    material: Mapped[str | None] = mapped_column(String(20))
    start_depth_m: Mapped[float | None] = mapped_column(Double)
    end_depth_m: Mapped[float | None] = mapped_column(Double)
    start_invert_m: Mapped[float | None] = mapped_column(Double)
    end_invert_m: Mapped[float | None] = mapped_column(Double)
    from_well: Mapped[str | None] = mapped_column(ForeignKey("drain_well.code"), index=True)
    to_well: Mapped[str | None] = mapped_column(ForeignKey("drain_well.code"), index=True)
    build_year: Mapped[int | None] = mapped_column(SmallInteger)
    owner: Mapped[str | None] = mapped_column(String(100))
    geom = geometry("LINESTRING")
    __table_args__ = (
        CheckConstraint(one_of("kind", catalog.PIPE_KINDS), name="kind"),
        CheckConstraint("diameter_mm > 0 AND diameter_mm <= 10000", name="diameter"),
        CheckConstraint("build_year IS NULL OR build_year BETWEEN 1850 AND 2100", name="year"),
        CheckConstraint(
            "(start_depth_m IS NULL OR start_depth_m >= 0) AND (end_depth_m IS NULL OR end_depth_m >= 0)",
            name="depth",
        ),
        CheckConstraint("from_well IS NULL OR to_well IS NULL OR from_well <> to_well", name="wells"),
        *geometry_checks(),
    )  # fmt: skip


class DrainOutfall(Base):
    """排口: where the network discharges into a receiving water."""

    __tablename__ = "drain_outfall"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(4))
    receiving_water: Mapped[str | None] = mapped_column(String(60))
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint(one_of("kind", catalog.PIPE_KINDS), name="kind"),
        *geometry_checks(),
    )


class PumpStation(Base):
    """泵站."""

    __tablename__ = "pump_station"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(4))
    capacity_m3h: Mapped[float | None] = mapped_column(Double)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint(one_of("kind", catalog.PIPE_KINDS), name="kind"),
        CheckConstraint("capacity_m3h IS NULL OR capacity_m3h > 0", name="capacity"),
        *geometry_checks(),
    )


class WaterloggingPoint(Base):
    """内涝点: a low place where water collects in heavy rain."""

    __tablename__ = "waterlogging_point"
    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(100))
    max_depth_m: Mapped[float | None] = mapped_column(Double)
    risk_level: Mapped[str | None] = mapped_column(String(4))
    last_event_date: Mapped[date | None] = mapped_column(Date)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint("max_depth_m IS NULL OR max_depth_m >= 0", name="depth"),
        CheckConstraint(
            "risk_level IS NULL OR " + one_of("risk_level", catalog.RISK_LEVELS), name="risk"
        ),
        *geometry_checks(),
    )


# --- sanitation, parking, cameras, sensors ----------------------------------------------------


class SanitationFacility(Base):
    """环卫设施: toilets, bins, collection points, transfer stations, treatment plants."""

    __tablename__ = "sanitation_facility"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10), index=True)
    capacity: Mapped[float | None] = mapped_column(Double)
    capacity_unit: Mapped[str | None] = mapped_column(String(10))
    opening_hours: Mapped[str | None] = mapped_column(String(60))
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint(one_of("kind", catalog.SANITATION_KINDS), name="kind"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity"),
        *geometry_checks(),
    )


class ParkingLot(Base):
    """停车场 with capacity, type and fee."""

    __tablename__ = "parking_lot"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    capacity: Mapped[int | None] = mapped_column(Integer)  # NULL: unknown (e.g. OSM without a tag)
    lot_type: Mapped[str] = mapped_column(String(4))
    fee: Mapped[str | None] = mapped_column(String(100))
    fee_per_hour: Mapped[float | None] = mapped_column(Double)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint("capacity IS NULL OR capacity > 0", name="capacity"),
        CheckConstraint(one_of("lot_type", catalog.PARKING_TYPES), name="lot_type"),
        CheckConstraint("fee_per_hour IS NULL OR fee_per_hour >= 0", name="fee"),
        *geometry_checks(),
    )


class ParkingOccupancy(Base):
    """停车占用读数: occupied spaces of one lot at one time."""

    __tablename__ = "parking_occupancy"
    lot_id: Mapped[int] = mapped_column(
        ForeignKey("parking_lot.id", ondelete="CASCADE"), primary_key=True
    )
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    occupied: Mapped[int] = mapped_column(Integer)
    entries: Mapped[int | None] = mapped_column(Integer)  # vehicles in since the previous reading
    __table_args__ = (
        CheckConstraint("occupied >= 0", name="occupied"),
        CheckConstraint("entries IS NULL OR entries >= 0", name="entries"),
    )


class ParkingHourly(Base):
    """停车小时汇总: one lot's readings over one UTC hour, kept by triggers (migration 0008).

    A reading holds until the lot's next one, for at most an hour; seconds without a reading are
    unobserved. full_s: seconds at ≥ 90 % of capacity; arrivals: counted entries, else rises.
    """

    __tablename__ = "parking_hourly"
    lot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("parking_lot.id", ondelete="CASCADE"), primary_key=True
    )
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True, index=True)
    observed_s: Mapped[float] = mapped_column(Double, server_default="0")
    occupied_s: Mapped[float] = mapped_column(Double, server_default="0")
    full_s: Mapped[float] = mapped_column(Double, server_default="0")
    max_occupied: Mapped[int | None] = mapped_column(Integer)
    arrivals: Mapped[int] = mapped_column(Integer, server_default="0")
    readings: Mapped[int] = mapped_column(Integer, server_default="0")
    counted: Mapped[int] = mapped_column(Integer, server_default="0")


class ParkingDaily(Base):
    """停车日汇总: one lot's hourly rows over one day of the city clock, kept by the same triggers.

    The day's sums, plus occupied and observed seconds per hour of day (arrays of 24, index 1 =
    00:00–01:00), so whole-day windows read one row per lot and day (migration 0008).
    """

    __tablename__ = "parking_daily"
    lot_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("parking_lot.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    observed_s: Mapped[float] = mapped_column(Double, server_default="0")
    occupied_s: Mapped[float] = mapped_column(Double, server_default="0")
    full_s: Mapped[float] = mapped_column(Double, server_default="0")
    max_occupied: Mapped[int | None] = mapped_column(Integer)
    arrivals: Mapped[int] = mapped_column(Integer, server_default="0")
    readings: Mapped[int] = mapped_column(Integer, server_default="0")
    counted: Mapped[int] = mapped_column(Integer, server_default="0")
    occupied_by_hour: Mapped[list[float]] = mapped_column(ARRAY(Double))
    observed_by_hour: Mapped[list[float]] = mapped_column(ARRAY(Double))


class Camera(Base):
    """视频监控点: position, viewing direction, field of view, range, online state, stream."""

    __tablename__ = "camera"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(100))
    direction_deg: Mapped[float | None] = mapped_column(Double)
    fov_deg: Mapped[float | None] = mapped_column(Double)
    range_m: Mapped[float | None] = mapped_column(Double)
    online: Mapped[bool] = mapped_column(Boolean, server_default="true")
    stream_url: Mapped[str | None] = mapped_column(Text)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint("direction_deg IS NULL OR (direction_deg >= 0 AND direction_deg < 360)",
                        name="direction"),
        CheckConstraint("fov_deg IS NULL OR (fov_deg > 0 AND fov_deg <= 360)", name="fov"),
        CheckConstraint("range_m IS NULL OR range_m > 0", name="range"),
        *geometry_checks(),
    )  # fmt: skip


class Sensor(Base):
    """物联感知设备: kind, position and the object it watches (layer + id)."""

    __tablename__ = "sensor"
    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(100))
    linked_layer: Mapped[str | None] = mapped_column(String(40))
    linked_id: Mapped[int | None] = mapped_column(BigInteger)
    geom = geometry("POINT")
    __table_args__ = (
        CheckConstraint("length(btrim(kind)) > 0", name="kind"),
        CheckConstraint("(linked_layer IS NULL) = (linked_id IS NULL)", name="link"),
        *geometry_checks(),
    )


class Alarm(Base):
    """告警 raised by a sensor."""

    __tablename__ = "alarm"
    id: Mapped[int] = id_column()
    sensor_id: Mapped[int] = mapped_column(ForeignKey("sensor.id", ondelete="CASCADE"), index=True)
    raised_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    level: Mapped[str] = mapped_column(String(4))
    message: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(4), server_default="未处理", index=True)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        CheckConstraint(one_of("level", catalog.ALARM_LEVELS), name="level"),
        CheckConstraint(one_of("state", catalog.ALARM_STATES), name="state"),
        CheckConstraint("cleared_at IS NULL OR cleared_at >= raised_at", name="cleared"),
    )


# --- platform tables: data versions, tile aggregates, access control -------------------------
# Created by migrations 0002–0006 (triggers and functions stay in the migrations); declared here so
# that every table lives in the models and alembic autogenerate sees no drift.


class DataVersion(Base):
    """Write counter per data table, bumped by statement triggers (cache invalidation)."""

    __tablename__ = "data_version"
    table_name: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TileAggregate(Base):
    """Point counts and coordinate sums per low-zoom tile cell of a layer."""

    __tablename__ = "tile_aggregate"
    layer: Mapped[str] = mapped_column(Text, primary_key=True)
    z: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    cx: Mapped[int] = mapped_column(Integer, primary_key=True)
    cy: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    sx: Mapped[float] = mapped_column(Double)
    sy: Mapped[float] = mapped_column(Double)


class TileAggregateBuild(Base):
    """The data version a layer's aggregates were built at."""

    __tablename__ = "tile_aggregate_build"
    layer: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AppUser(Base):
    """用户: a person or screen that signs in, with a role and (for district users) areas."""

    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(60))
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(10))
    areas: Mapped[list[str]] = mapped_column(ARRAY(String(12)), server_default="{}")
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    password_changed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Bumped on sign-out and (by a trigger, migration 0006) on password, role, area changes and
    # disabling; a session cookie carries the generation it was signed in at.
    session_generation: Mapped[int] = mapped_column(Integer, server_default="0")


class ApiToken(Base):
    """API or kiosk token of a user; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(60))
    token_hash: Mapped[str] = mapped_column(CHAR(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """A failed sign-in (throttling)."""

    __tablename__ = "login_failure"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AuditLog(Base):
    """审计日志: who did what to which object, from where."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    username: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict] = mapped_column(JSONB, server_default="{}")
    ip: Mapped[str | None] = mapped_column(String(64))


class BigscreenPin(Base):
    """大屏专题固定: the big-screen view an operator pinned (at most one row; none: rotation)."""

    __tablename__ = "bigscreen_pin"
    __table_args__ = (CheckConstraint("id = 1", name="ck_bigscreen_pin_single"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, server_default="1")
    view_id: Mapped[str] = mapped_column(Text)
    pinned_by: Mapped[str] = mapped_column(Text)
    pinned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class KpiDaily(Base):
    """指标日记录: a big-screen figure as it stood on a day (for those without a history)."""

    __tablename__ = "kpi_daily"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kpi: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[float | None] = mapped_column(Double)
    recorded_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class CaseHeatCell(Base):
    """案件热力金字塔: cases of one web-mercator tile, period and (class, source, status).

    Monthly rows at zooms 11–17, daily rows at zoom 17; positions summed in nano-degrees. Kept by
    statement triggers on case_record, rebuilt by case_heat_rebuild() (migration 0010).
    """

    __tablename__ = "case_heat_cell"
    __table_args__ = (
        CheckConstraint("grain IN ('day', 'month')", name="grain"),
        Index("ix_case_heat_cell_empty", "n", postgresql_where="n = 0"),
    )
    z: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    grain: Mapped[str] = mapped_column(Text(collation="C"), primary_key=True)
    status: Mapped[str] = mapped_column(String(4, collation="C"), primary_key=True)
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    x: Mapped[int] = mapped_column(Integer, primary_key=True)
    y: Mapped[int] = mapped_column(Integer, primary_key=True)
    class_code: Mapped[str] = mapped_column(String(5, collation="C"), primary_key=True)
    source: Mapped[str] = mapped_column(String(10, collation="C"), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    sum_lon: Mapped[int] = mapped_column(BigInteger)
    sum_lat: Mapped[int] = mapped_column(BigInteger)


class UnitGridNeighbour(Base):
    """单元网格邻接: two unit grids sharing a boundary vertex (queen contiguity), both ways.

    Kept by statement triggers on unit_grid, rebuilt by unit_grid_neighbour_rebuild() (migration
    0012); the Gi* and emerging hotspots read their weights from it.
    """

    __tablename__ = "unit_grid_neighbour"
    grid_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    neighbour_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
