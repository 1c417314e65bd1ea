"""The layer registry (专题图层): one declaration per thematic layer, nothing coded per layer.

Every SQL identifier the tile and feature queries use comes from here: the source table or view
(views are created by migrations, see 0005), the exposed fields and the fixed filter of each layer. User input only ever picks
a layer id and filter values, which are bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from geodata import catalog

GROUPS = ("基础", "部件", "排水", "环卫", "停车", "视频", "园林", "案件")


@dataclass(frozen=True)
class Field:
    """A property of a layer's features."""

    name: str
    title: str
    kind: str = "text"  # text | int | float | bool | date | datetime
    filterable: bool = False
    values: tuple[str, ...] = ()  # the allowed filter values, when a code list exists
    range: bool = False  # filterable as <name>_from / <name>_to (dates)


@dataclass(frozen=True)
class LegendEntry:
    """One legend row: a value (or None for 'all') with its colour."""

    label: str
    color: str
    value: str | None = None


@dataclass(frozen=True)
class Style:
    """How the browser draws the layer."""

    color: str
    fill: str | None = None
    radius: int = 4
    weight: float = 1.5
    fill_opacity: float = 0.35
    by: str | None = None  # property that picks the colour from the legend
    legend: tuple[LegendEntry, ...] = ()


@dataclass(frozen=True)
class Layer:
    """One thematic layer."""

    id: str
    title: str
    group: str
    source: str  # a table or view with columns id, geom and the fields
    geometry: str  # point | line | polygon
    fields: tuple[Field, ...]
    style: Style
    where: str = ""  # fixed condition, written here, never from a request
    min_zoom: int = 0
    max_zoom: int = 22
    detail_zoom: int = 0  # below it a point layer is sent as counts per cell
    # How the page draws the layer below its detail zoom: "counts" (dots per cell, from the tiles)
    # or "heat" (a heat map of /api/analytics/heat for roles with analytics; the cases).
    overview: str = "counts"
    restricted: bool = False
    # Whether the map's area focus cuts the layer; base layers (基础) stay whole for context.
    follows_area: bool = True
    tables: tuple[str, ...] = field(default=())  # tables whose changes invalidate cached tiles

    def field(self, name: str) -> Field | None:
        """The exposed field of that name, if any."""
        return next((f for f in self.fields if f.name == name), None)

    @property
    def filterable(self) -> tuple[Field, ...]:
        """Fields a request may filter on."""
        return tuple(f for f in self.fields if f.filterable)


def _legend(colors: dict[str, str]) -> tuple[LegendEntry, ...]:
    """Legend entries keyed by value (the label is the value itself)."""
    return tuple(LegendEntry(v, c, v) for v, c in colors.items())


STATUS_COLORS = {"完好": "#2e7d32", "破损": "#f57c00", "丢失": "#c62828", "废弃": "#757575",
                 "移除": "#9e9e9e"}  # fmt: skip
CASE_COLORS = {"待立案": "#8e24aa", "已立案": "#3949ab", "已派遣": "#1e88e5", "已处置": "#00897b",
               "已核查": "#7cb342", "已结案": "#9e9e9e", "已作废": "#bdbdbd"}  # fmt: skip
MAJOR_COLORS = {"01": "#1565c0", "02": "#6a1b9a", "03": "#2e7d32", "04": "#558b2f",
                "05": "#8d6e63", "06": "#c62828"}  # fmt: skip

ADMIN_FIELDS = (Field("code", "代码"), Field("name", "名称"), Field("parent_code", "上级代码"),
                Field("area_m2", "面积(m²)", "float"))  # fmt: skip


def admin_layer(level: str, title: str, color: str, min_zoom: int) -> Layer:
    """District, street or community outlines."""
    return Layer(
        id=level, title=title, group="基础", source="admin_area", geometry="polygon",
        fields=ADMIN_FIELDS, where=f"level = '{level}'", follows_area=False,
        style=Style(color=color, fill=color, fill_opacity=0.04, weight=2.0,
                    legend=(LegendEntry(title, color),)),
        min_zoom=min_zoom, tables=("admin_area",),
    )  # fmt: skip


def component_layer(major: str) -> Layer:
    """Components of one major class (部件大类), filterable by minor class and status."""
    minors = tuple(c for c in catalog.COMPONENT_MINOR if c.startswith(major))
    return Layer(
        id=f"component_{major}", title=f"部件·{catalog.COMPONENT_MAJOR[major]}", group="部件",
        source="component_view",
        geometry="point", where=f"left(class_code, 2) = '{major}'",
        fields=(Field("code", "标识码"), Field("class_code", "小类代码", filterable=True, values=minors),
                Field("class_name", "部件名称"), Field("status", "状态", filterable=True,
                values=catalog.COMPONENT_STATUSES), Field("grid_code", "单元网格"),
                Field("department", "主管部门"), Field("owner", "权属单位"),
                Field("maintainer", "养护单位")),
        style=Style(color=MAJOR_COLORS[major], by="status", legend=_legend(STATUS_COLORS)),
        min_zoom=10, detail_zoom=16, tables=("component",),
    )  # fmt: skip


def point_layer(id: str, title: str, group: str, table: str, color: str, fields: tuple[Field, ...],
                **kw) -> Layer:  # fmt: skip
    """A plain point layer from one table."""
    kw.setdefault("style", Style(color=color, legend=(LegendEntry(title, color),)))
    kw.setdefault("tables", (table,))
    return Layer(id=id, title=title, group=group, source=table, geometry="point", fields=fields,
                 min_zoom=kw.pop("min_zoom", 10), detail_zoom=kw.pop("detail_zoom", 14), **kw)  # fmt: skip


# fmt: off
LAYERS: tuple[Layer, ...] = (
    admin_layer("district", "区县", "#0b3d91", 0),
    admin_layer("street", "街道", "#1565c0", 10),
    admin_layer("community", "社区", "#42a5f5", 12),
    Layer(
        id="unit_grid", title="单元网格", group="基础", source="unit_grid", geometry="polygon",
        fields=(Field("code", "网格编码"), Field("community_code", "社区代码"),
                Field("area_m2", "面积(m²)", "float"), Field("responsible_unit", "责任单位")),
        min_zoom=13, tables=("unit_grid",), follows_area=False,
        style=Style(color="#ff8f00", fill="#ffe082", fill_opacity=0.08, weight=0.8,
                    legend=(LegendEntry("单元网格", "#ff8f00"),)),
    ),
    Layer(
        id="road", title="道路", group="基础", source="road", geometry="line",
        fields=(Field("name", "道路名称"), Field("road_class", "道路等级", filterable=True,
                values=catalog.ROAD_CLASSES), Field("width_m", "宽度(m)", "float")),
        min_zoom=10, tables=("road",), follows_area=False,
        style=Style(color="#90a4ae", weight=2.0, by="road_class", legend=_legend(
            {"快速路": "#ef6c00", "主干路": "#f9a825", "次干路": "#fdd835", "支路": "#b0bec5",
             "街巷": "#cfd8dc"})),
    ),
    point_layer("geocode", "地理编码", "基础", "geocode", "#5d4037",
                (Field("address", "标准地址"), Field("kind", "类型", filterable=True,
                 values=catalog.GEOCODE_KINDS), Field("grid_code", "单元网格")),
                min_zoom=14, detail_zoom=16, follows_area=False),
    *(component_layer(m) for m in catalog.COMPONENT_MAJOR),
    Layer(
        id="drain_pipe", title="排水管线", group="排水", source="drain_pipe", geometry="line",
        fields=(Field("code", "管线编码"), Field("kind", "类别", filterable=True,
                values=catalog.PIPE_KINDS), Field("diameter_mm", "管径(mm)", "int"),
                Field("material", "材质"), Field("start_invert_m", "起点管底高程", "float"),
                Field("end_invert_m", "终点管底高程", "float"), Field("from_well", "起点井"),
                Field("to_well", "终点井"), Field("build_year", "建设年代", "int")),
        min_zoom=12, tables=("drain_pipe",),
        style=Style(color="#0277bd", weight=2.5, by="kind", legend=_legend(
            {"雨水": "#0277bd", "污水": "#6d4c41", "合流": "#7b1fa2"})),
    ),
    point_layer("drain_well", "检查井", "排水", "drain_well", "#01579b",
                (Field("code", "井编码"), Field("kind", "类型"), Field("depth_m", "井深(m)", "float"),
                 Field("invert_level_m", "井底高程", "float"))),
    point_layer("drain_outfall", "排口", "排水", "drain_outfall", "#004d40",
                (Field("code", "排口编码"), Field("name", "名称"), Field("receiving_water", "受纳水体")),
                detail_zoom=0),
    point_layer("pump_station", "泵站", "排水", "pump_station", "#1a237e",
                (Field("code", "编码"), Field("name", "名称"), Field("capacity_m3h", "能力(m³/h)", "float")),
                detail_zoom=0),
    point_layer("waterlogging_point", "内涝点", "排水", "waterlogging_point", "#d50000",
                (Field("name", "名称"), Field("max_depth_m", "最大积水深(m)", "float"),
                 Field("risk_level", "风险等级", filterable=True, values=catalog.RISK_LEVELS)),
                detail_zoom=0),
    point_layer("sanitation", "环卫设施", "环卫", "sanitation_facility", "#2e7d32",
                (Field("name", "名称"), Field("kind", "设施类型", filterable=True,
                 values=catalog.SANITATION_KINDS), Field("code", "编码"),
                 Field("capacity", "容量", "float"), Field("opening_hours", "开放时间")),
                style=Style(color="#2e7d32", by="kind", legend=_legend(
                    {"公共厕所": "#00897b", "垃圾箱": "#9e9d24", "垃圾收集点": "#ef6c00",
                     "垃圾中转站": "#6d4c41", "垃圾处理厂": "#37474f"}))),
    point_layer("parking", "停车场", "停车", "parking_lot_status", "#3949ab",
                (Field("name", "名称"), Field("code", "编码"), Field("capacity", "泊位", "int"),
                 Field("occupied", "占用", "int"), Field("occupancy", "占用率", "float"),
                 Field("occupancy_level", "状态", filterable=True, values=catalog.OCCUPANCY_LEVELS),
                 Field("lot_type", "类型", filterable=True, values=catalog.PARKING_TYPES),
                 Field("fee", "收费")),
                style=Style(color="#3949ab", by="occupancy_level", radius=6, legend=_legend(
                    {"空闲": "#43a047", "较满": "#fb8c00", "紧张": "#e53935", "无数据": "#9e9e9e"})),
                detail_zoom=0, tables=("parking_lot", "parking_occupancy")),
    point_layer("camera", "视频监控", "视频", "camera", "#455a64",
                (Field("name", "名称"), Field("code", "编码"), Field("online", "在线", "bool", True),
                 Field("direction_deg", "朝向(°)", "float"), Field("fov_deg", "视场角(°)", "float"),
                 Field("range_m", "可视距离(m)", "float"), Field("stream_url", "视频流")),
                restricted=True, detail_zoom=12,
                style=Style(color="#455a64", by="online", legend=(
                    LegendEntry("在线", "#00acc1", "true"), LegendEntry("离线", "#9e9e9e", "false")))),
    Layer(
        id="green_space", title="公园绿地", group="园林", source="green_space", geometry="polygon",
        fields=(Field("name", "名称"), Field("code", "编码"), Field("kind", "绿地类型",
                filterable=True, values=tuple(catalog.GREEN_KINDS)),
                Field("area_m2", "面积(m²)", "float"), Field("historic_district", "历史地段", "bool")),
        min_zoom=11, tables=("green_space",),
        style=Style(color="#2e7d32", fill="#66bb6a", fill_opacity=0.5, weight=1.0,
                    legend=(LegendEntry("公园绿地", "#66bb6a"),)),
    ),
    Layer(
        id="residential", title="居住用地", group="园林", source="land_parcel", geometry="polygon",
        where="land_use LIKE 'R%'", min_zoom=12, tables=("land_parcel",),
        fields=(Field("code", "地块编码"), Field("name", "名称"), Field("population", "人口", "int"),
                Field("area_m2", "面积(m²)", "float")),
        style=Style(color="#f9a825", fill="#fff176", fill_opacity=0.3, weight=0.5,
                    legend=(LegendEntry("居住用地", "#fff176"),)),
    ),
    point_layer("case", "案件", "案件", "case_view", "#c62828",
                (Field("code", "案件编号"), Field("class_name", "案件类别"),
                 Field("status", "状态", filterable=True, values=catalog.CASE_STATUSES),
                 Field("kind", "类型", filterable=True, values=catalog.CASE_KINDS),
                 Field("event_class_code", "事件小类", filterable=True, values=tuple(catalog.EVENT_MINOR)),
                 Field("component_class_code", "部件小类", filterable=True,
                       values=tuple(catalog.COMPONENT_MINOR)),
                 Field("source", "来源", filterable=True, values=catalog.CASE_SOURCES),
                 Field("reported_at", "上报时间", "datetime", True, range=True),
                 Field("overdue", "超期", "bool", True), Field("grid_code", "单元网格"),
                 Field("department", "处置部门"), Field("description", "描述")),
                detail_zoom=15, overview="heat",
                style=Style(color="#c62828", by="status", legend=_legend(CASE_COLORS)),
                tables=("case_record",)),
    point_layer("sensor", "物联感知设备", "排水", "sensor", "#6a1b9a",
                (Field("code", "编码"), Field("kind", "类型", filterable=True,
                 values=catalog.SENSOR_KINDS), Field("name", "名称"))),
    point_layer("alarm", "告警", "排水", "active_alarm", "#d50000",
                (Field("message", "告警内容"), Field("level", "级别", filterable=True,
                 values=catalog.ALARM_LEVELS), Field("state", "状态"), Field("code", "设备编码"),
                 Field("raised_at", "告警时间", "datetime")),
                detail_zoom=0, tables=("alarm", "sensor")),
)
# fmt: on

REGISTRY: dict[str, Layer] = {layer.id: layer for layer in LAYERS}


def layer_json(layer: Layer) -> dict:
    """The registry entry as JSON for clients."""
    s = layer.style
    return {
        "id": layer.id, "title": layer.title, "group": layer.group, "geometry": layer.geometry,
        "fields": [{"name": f.name, "title": f.title, "kind": f.kind, "filterable": f.filterable,
                    "values": list(f.values), "range": f.range} for f in layer.fields],
        "min_zoom": layer.min_zoom, "max_zoom": layer.max_zoom,
        "detail_zoom": layer.detail_zoom, "overview": layer.overview, "restricted": layer.restricted,
        "follows_area": layer.follows_area,
        "style": {"color": s.color, "fill": s.fill, "radius": s.radius, "weight": s.weight,
                  "fill_opacity": s.fill_opacity, "by": s.by},
        "legend": [{"label": e.label, "color": e.color, "value": e.value} for e in s.legend],
        "tiles": f"/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.pbf",
    }  # fmt: skip
