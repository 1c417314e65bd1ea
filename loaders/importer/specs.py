"""Import specs: one declarative row per importable layer (table, natural key, geometry, fields).

Column types, NOT NULL, server defaults and foreign keys are read from the ORM models; this table
only says what may be imported and how rows are identified and checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Column, Table

from geodata import catalog
from geodata.models import Base


@dataclass(frozen=True)
class LayerSpec:
    """How one layer is imported."""

    layer: str
    table: str
    geometry: str  # target geometry type of the `geom` column
    fields: tuple[str, ...]  # target fields a file may fill (besides the geometry)
    key: str | None = None  # natural key for upsert and duplicate detection
    code_check: str | None = None  # which code-format check applies (see validation.CODE_CHECKS)
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)  # fixed code lists
    stages: tuple[str, ...] = ()  # date fields that must be in this order
    not_before: tuple[tuple[str, str], ...] = ()  # (later, earlier) pairs, e.g. deadline
    derive: dict[str, str] = field(default_factory=dict)  # field → rule filling it when empty

    @cached_property
    def model(self) -> Table:
        """The SQLAlchemy table behind the layer."""
        return Base.metadata.tables[self.table]

    def column(self, name: str) -> Column:
        """One column of the target table."""
        return self.model.columns[name]

    def required(self) -> tuple[str, ...]:
        """Fields the database needs a value for (NOT NULL without default)."""
        return tuple(
            f for f in self.fields
            if not self.column(f).nullable and self.column(f).server_default is None
        )  # fmt: skip


CASE_STAGES = catalog.CASE_STAGES  # fmt: skip

SPECS: dict[str, LayerSpec] = {s.layer: s for s in (
    LayerSpec("admin_area", "admin_area", "MULTIPOLYGON",
              ("code", "level", "name", "parent_code"), key="code", code_check="admin",
              choices={"level": tuple(catalog.ADMIN_LEVELS)}),
    LayerSpec("unit_grid", "unit_grid", "MULTIPOLYGON",
              ("code", "community_code", "start_date", "end_date", "responsible_unit"),
              key="code", code_check="unit_grid", stages=("start_date", "end_date"),
              derive={"community_code": "community_of_grid"}),
    LayerSpec("responsibility_grid", "responsibility_grid", "MULTIPOLYGON",
              ("code", "name", "kind", "level", "department", "person", "area_code"),
              key="code", choices={"kind": catalog.GRID_KINDS, "level": catalog.GRID_LEVELS}),
    LayerSpec("geocode", "geocode", "POINT",
              ("address", "kind", "road_name", "door_number", "building", "poi_name",
               "district_code", "street_code", "community_code", "grid_code"),
              choices={"kind": catalog.GEOCODE_KINDS}),
    LayerSpec("component", "component", "POINT",
              ("code", "class_code", "name", "department", "owner", "maintainer", "grid_code",
               "status", "initial_date", "change_date", "data_source", "remark", "photo_url"),
              key="code", code_check="component",
              choices={"status": catalog.COMPONENT_STATUSES, "data_source": catalog.DATA_SOURCES},
              stages=("initial_date", "change_date"), derive={"class_code": "class_of_component"}),
    LayerSpec("case", "case_record", "POINT",
              ("code", "kind", "event_class_code", "component_class_code", "source",
               "description", "address", "grid_code", "component_id", *CASE_STAGES, "deadline",
               "department", "status", "overdue", "rework_count"),
              key="code", code_check="case",
              choices={"kind": catalog.CASE_KINDS, "source": catalog.CASE_SOURCES,
                       "status": catalog.CASE_STATUSES},
              stages=CASE_STAGES, not_before=(("deadline", "reported_at"),),
              derive={"kind": "kind_of_case"}),
    LayerSpec("road", "road", "MULTILINESTRING", ("name", "road_class", "width_m"),
              choices={"road_class": catalog.ROAD_CLASSES}),
    LayerSpec("land_parcel", "land_parcel", "MULTIPOLYGON",
              ("code", "land_use", "name", "population"), key="code"),
    LayerSpec("green_space", "green_space", "MULTIPOLYGON",
              ("code", "name", "kind", "historic_district"), key="code",
              choices={"kind": tuple(catalog.GREEN_KINDS)}),
    LayerSpec("drain_pipe", "drain_pipe", "LINESTRING",
              ("code", "kind", "diameter_mm", "material", "start_depth_m", "end_depth_m",
               "start_invert_m", "end_invert_m", "from_well", "to_well", "build_year", "owner"),
              key="code", choices={"kind": catalog.PIPE_KINDS}),
    LayerSpec("drain_well", "drain_well", "POINT",
              ("code", "kind", "pipe_kind", "ground_level_m", "invert_level_m", "depth_m"),
              key="code", choices={"pipe_kind": catalog.PIPE_KINDS}),
    LayerSpec("drain_outfall", "drain_outfall", "POINT",
              ("code", "name", "kind", "receiving_water"), key="code",
              choices={"kind": catalog.PIPE_KINDS}),
    LayerSpec("pump_station", "pump_station", "POINT",
              ("code", "name", "kind", "capacity_m3h"), key="code",
              choices={"kind": catalog.PIPE_KINDS}),
    LayerSpec("waterlogging_point", "waterlogging_point", "POINT",
              ("name", "max_depth_m", "risk_level", "last_event_date"),
              choices={"risk_level": catalog.RISK_LEVELS}),
    LayerSpec("sanitation_facility", "sanitation_facility", "POINT",
              ("code", "name", "kind", "capacity", "capacity_unit", "opening_hours"), key="code",
              choices={"kind": catalog.SANITATION_KINDS}),
    LayerSpec("parking_lot", "parking_lot", "POINT",
              ("code", "name", "capacity", "lot_type", "fee", "fee_per_hour"), key="code",
              choices={"lot_type": catalog.PARKING_TYPES}),
    LayerSpec("camera", "camera", "POINT",
              ("code", "name", "direction_deg", "fov_deg", "range_m", "online", "stream_url"),
              key="code"),
    LayerSpec("sensor", "sensor", "POINT",
              ("code", "kind", "name", "linked_layer", "linked_id"), key="code"),
)}  # fmt: skip


def spec_for(layer: str) -> LayerSpec:
    """The spec of a layer, or KeyError with the list of layers."""
    if layer not in SPECS:
        raise KeyError(f"未知图层：{layer}（可导入：{', '.join(SPECS)}）")
    return SPECS[layer]
