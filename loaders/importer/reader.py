"""Read GeoJSON, Shapefile, GeoPackage and CSV (lon/lat or WKT columns, also .csv.gz) files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS

from geodata.crs import SourceCrs

LON_NAMES = ("lon", "lng", "long", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom", "shape")
CSV_SUFFIXES = (".csv", ".csv.gz", ".txt", ".tsv")


class ReadError(ValueError):
    """A file that cannot be read as a layer."""


@dataclass
class Source:
    """What a file holds: attribute columns, one geometry per row (or None), its CRS if known."""

    frame: pd.DataFrame
    geoms: np.ndarray
    crs: SourceCrs | None
    geometry_note: str  # e.g. "经纬度列 LONGITUDE/LATITUDE"


def is_csv(path: Path) -> bool:
    """CSV files are recognised by their suffix (also compressed)."""
    return path.name.lower().endswith(CSV_SUFFIXES)


def read_source(path: Path, *, encoding: str | None, sublayer: str | None,
                geometry: dict[str, str]) -> Source:  # fmt: skip
    """Read a file of any supported format."""
    if not path.exists():
        raise ReadError(f"文件不存在：{path}")
    if is_csv(path):
        return read_csv(path, encoding=encoding, geometry=geometry)
    return read_ogr(path, encoding=encoding, sublayer=sublayer)


def pick_layer(path: Path, sublayer: str | None) -> str | None:
    """The layer to read: the requested one, or the only one (several need --sublayer)."""
    try:
        names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    except Exception as exc:
        raise ReadError(f"无法读取 {path.name}：{exc}") from exc
    if sublayer is not None:
        if sublayer not in names:
            raise ReadError(f"{path.name} 中没有图层 {sublayer}（有：{', '.join(names)}）")
        return sublayer
    if len(names) > 1:
        raise ReadError(f"{path.name} 有多个图层，请用 --sublayer 指定：{', '.join(names)}")
    return None


def read_ogr(path: Path, *, encoding: str | None, sublayer: str | None) -> Source:
    """GeoJSON / Shapefile / GeoPackage through pyogrio (the .cpg / .prj / crs member honoured)."""
    layer = pick_layer(path, sublayer)
    kwargs = {"encoding": encoding} if encoding else {}
    try:
        frame = pyogrio.read_dataframe(path, layer=layer, **kwargs)
    except Exception as exc:
        raise ReadError(f"无法读取 {path.name}：{exc}") from exc
    crs = SourceCrs("epsg", CRS.from_user_input(frame.crs)) if frame.crs is not None else None
    geoms = np.asarray(frame.geometry.array, dtype=object)
    attrs = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    return Source(attrs, geoms, crs, f"{path.suffix.lstrip('.')} 几何")


def find_column(columns: list[str], names: tuple[str, ...]) -> str | None:
    """The first column whose lower-cased name is one of `names`."""
    by_lower = {c.lower().strip(): c for c in columns}
    return next((by_lower[n] for n in names if n in by_lower), None)


def read_csv(path: Path, *, encoding: str | None, geometry: dict[str, str]) -> Source:
    """CSV with lon/lat columns (auto-detected or from the mapping) or a WKT column."""
    sep = "\t" if path.name.lower().endswith(".tsv") else ","
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep,
                            encoding=encoding or "utf-8-sig")  # fmt: skip
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ReadError(f"无法读取 CSV {path.name}：{exc}（编码可用 --encoding 指定）") from exc
    columns = list(frame.columns)
    wkt = geometry.get("wkt") or (None if geometry.get("lon") else find_column(columns, WKT_NAMES))
    if wkt:
        return Source(frame.drop(columns=[wkt]), wkt_geoms(frame, wkt), None, f"WKT 列 {wkt}")
    lon = geometry.get("lon") or find_column(columns, LON_NAMES)
    lat = geometry.get("lat") or find_column(columns, LAT_NAMES)
    if not lon or not lat or lon not in columns or lat not in columns:
        raise ReadError(
            f"CSV {path.name} 中找不到经纬度列（lon/lng/longitude/x 与 lat/latitude/y）或 WKT 列"
        )
    geoms = point_geoms(frame[lon], frame[lat])
    return Source(frame, geoms, None, f"经纬度列 {lon}/{lat}")


def wkt_geoms(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Parse a WKT column; empty or unreadable text gives None."""
    text = np.array([t.strip() or None for t in frame[column]], dtype=object)
    return np.asarray(shapely.from_wkt(text, on_invalid="ignore"), dtype=object)


def point_geoms(lon: pd.Series, lat: pd.Series) -> np.ndarray:
    """Points from two text columns; an empty or non-numeric coordinate gives None."""
    x = pd.to_numeric(lon.str.strip(), errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(lat.str.strip(), errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    geoms = np.full(len(x), None, dtype=object)
    geoms[ok] = shapely.points(x[ok], y[ok])
    return geoms
