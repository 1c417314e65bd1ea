"""Field mapping: `--map src=dst` options and YAML mapping files.

A mapping file (all keys optional)::

    layer: case                     # the layer it is meant for (checked)
    crs: EPSG:4326                  # source CRS unless --crs is given
    extent: [-71.2, 42.2, -70.9, 42.45]  # city extent unless --extent is given
    encoding: gbk                   # text encoding of CSV / shapefile
    sublayer: cases                 # layer of a GeoPackage
    geometry: {lon: LONGITUDE, lat: LATITUDE}   # or {wkt: WKT}; CSV only
    timezone: America/New_York      # of naive date-times (default Asia/Shanghai)
    datetime_format: "%m/%d/%Y %I:%M:%S %p"     # strptime format (default ISO 8601)
    date_format: "%Y/%m/%d"
    stack_threshold: 50             # flag ≥ 50 rows on one coordinate (default 10)
    fields:                         # target field: source column (one column may feed several)
      code: CASE_ENQUIRY_ID
    constants:                      # target field: fixed value
      kind: 事件
    values:                         # target field: {source value: our value, "*": default}
      status: {Closed: 已结案, Open: 已派遣}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from loaders.importer.specs import LayerSpec

DEFAULT_TIMEZONE = "Asia/Shanghai"
FILE_KEYS = {"layer", "crs", "extent", "encoding", "sublayer", "geometry", "timezone",
             "datetime_format", "date_format", "fields", "constants", "values", "stack_threshold"}  # fmt: skip


class MappingError(ValueError):
    """A mapping that cannot be applied (unknown field, missing column, bad file)."""


@dataclass
class Mapping:
    """Everything that says how source columns become target fields."""

    fields: dict[str, str] = field(default_factory=dict)  # target → source column
    constants: dict[str, object] = field(default_factory=dict)
    values: dict[str, dict[str, object]] = field(default_factory=dict)
    geometry: dict[str, str] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)  # crs, extent, encoding, …

    def option(self, name: str, default=None):
        """A file-level option such as `crs` or `timezone`."""
        return self.options.get(name, default)


def parse_map_args(pairs: list[str]) -> dict[str, str]:
    """`--map src=dst` options → {target: source}."""
    fields = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise MappingError(f"--map 的格式应为 源字段=目标字段：{pair}")
        fields[dst.strip()] = src.strip()
    return fields


def load_mapping_file(path: Path) -> Mapping:
    """Read and check the shape of a YAML mapping file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"无法读取映射文件 {path}：{exc}") from exc
    if not isinstance(data, dict):
        raise MappingError(f"映射文件 {path} 应为 YAML 字典")
    unknown = set(data) - FILE_KEYS
    if unknown:
        raise MappingError(f"映射文件中有未知的键：{', '.join(sorted(unknown))}")
    for key in ("fields", "constants", "values", "geometry"):
        if not isinstance(data.get(key) or {}, dict):
            raise MappingError(f"映射文件中 {key} 应为字典")
    options = {
        k: v for k, v in data.items() if k not in ("fields", "constants", "values", "geometry")
    }
    return Mapping(
        fields={str(k): str(v) for k, v in (data.get("fields") or {}).items()},
        constants=dict(data.get("constants") or {}),
        values={str(k): {str(s): t for s, t in (v or {}).items()}
                for k, v in (data.get("values") or {}).items()},
        geometry={str(k): str(v) for k, v in (data.get("geometry") or {}).items()},
        options=options,
    )  # fmt: skip


def combine(file_mapping: Mapping | None, cli_fields: dict[str, str]) -> Mapping:
    """The mapping file with the `--map` options on top."""
    mapping = file_mapping or Mapping()
    mapping.fields = {**mapping.fields, **cli_fields}
    return mapping


def check_targets(mapping: Mapping, spec: LayerSpec) -> None:
    """Every target field must exist in the layer (clear error otherwise)."""
    targets = set(mapping.fields) | set(mapping.constants) | set(mapping.values)
    unknown = sorted(t for t in targets if t not in spec.fields)
    if unknown:
        raise MappingError(
            f"图层 {spec.layer} 没有字段：{', '.join(unknown)}（可用字段：{', '.join(spec.fields)}）"
        )
    layer = mapping.option("layer")
    if layer and layer != spec.layer:
        raise MappingError(f"映射文件是为图层 {layer} 写的，不能用于 {spec.layer}")


def resolve(mapping: Mapping, spec: LayerSpec, columns: list[str]) -> dict[str, str]:
    """Final {target: source column}: explicit mappings plus columns named like a target field."""
    check_targets(mapping, spec)
    missing = sorted({s for s in mapping.fields.values() if s not in columns})
    if missing:
        raise MappingError(
            f"源文件中没有字段：{', '.join(missing)}（源字段：{', '.join(columns)}）"
        )
    resolved = dict(mapping.fields)
    by_lower = {c.lower(): c for c in columns}
    for target in spec.fields:
        if target not in resolved and target not in mapping.constants and target in by_lower:
            resolved[target] = by_lower[target]
    return resolved
