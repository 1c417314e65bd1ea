"""Coordinate systems of imported data: EPSG codes, CGCS2000 Gauss-Krüger zones, GCJ-02 and BD-09.

Everything is stored as CGCS2000 (EPSG:4490). WGS84 (EPSG:4326) and CGCS2000 differ by a few
centimetres at most, far below the precision of city-management data, so WGS84 coordinates are
taken as CGCS2000 unchanged.

Beijing 1954, Xian 1980 (and New Beijing) are refused: no transformation to CGCS2000 ships with
PROJ for them (it would fall back to a "ballpark" no-op, tens of metres off), so an import of such
data needs `--towgs84 dx,dy,dz[,rx,ry,rz,s]`, the Bursa-Wolf parameters of PROJ's +towgs84
(metres, arc-seconds, ppm; position-vector convention) from that datum to WGS84.

GCJ-02 (高德/腾讯) and BD-09 (百度) use the public formulas (a = 6378245.0,
ee = 0.00669342162296594323, x_pi = π·3000/180); GCJ-02 → WGS84 is solved by fixed-point
iteration to well below a metre.

`--crs` syntax (case-insensitive):
  EPSG:4326 / 4548            any EPSG code
  cgcs2000-gk3-39 / gk3-39    CGCS2000 3° Gauss-Krüger zone 39 (easting with zone prefix, EPSG:4527)
  cgcs2000-gk3-cm117 / gk117  CGCS2000 3° Gauss-Krüger, central meridian 117°E (EPSG:4548)
  cgcs2000-gk6-20 / gk6-20    CGCS2000 6° Gauss-Krüger zone 20 (EPSG:4498)
  gk6-cm117                   CGCS2000 6° Gauss-Krüger, central meridian 117°E (EPSG:4509)
  wgs84, cgcs2000, gcj02, bd09
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

STORAGE_EPSG = 4490
A = 6378245.0
EE = 0.00669342162296594323
X_PI = math.pi * 3000.0 / 180.0
GEOGRAPHIC_EPSG = {4326, 4490}  # WGS84 and CGCS2000: treated as equal (see module docstring)
CHINA_LON = (73.5, 135.0)  # metric_epsg: Gauss-Krüger zones inside, UTM zones outside

_GK = re.compile(r"^(?:cgcs2000-)?gk(3|6)?-?(cm)?(\d{2,3})$")
# Geodetic datums that need a user-supplied datum shift, matched in pyproj's (or ESRI's) datum name.
LEGACY_DATUMS = {"北京1954": r"beijing[ _]?1954", "西安1980": r"xi'?an[ _]?1980",
                 "新北京54": r"new[ _]beijing"}  # fmt: skip
# An unnamed datum ("Unknown based on …", e.g. a bare PROJ string) on their ellipsoids is one too.
LEGACY_ELLIPSOIDS = {6378245.0: "北京1954", 6378140.0: "西安1980"}  # Krassowsky 1940, IAG 1975


class CrsError(ValueError):
    """A coordinate system option that cannot be understood."""


@dataclass(frozen=True)
class SourceCrs:
    """Where coordinates come from: an EPSG/pyproj CRS, or one of the Chinese offset datums."""

    kind: str  # "epsg" | "gcj02" | "bd09"
    crs: CRS | None = None
    towgs84: tuple[float, ...] | None = None  # --towgs84, already part of crs
    name: str | None = None  # label of the CRS the --towgs84 shift was added to

    @property
    def label(self) -> str:
        """Readable name for messages and reports."""
        if self.kind != "epsg":
            return self.kind.upper().replace("GCJ02", "GCJ-02").replace("BD09", "BD-09")
        if self.towgs84 is not None:
            return f"{self.name} +towgs84={','.join(f'{p:g}' for p in self.towgs84)}"
        epsg = self.crs.to_epsg()
        return f"EPSG:{epsg} {self.crs.name}" if epsg else self.crs.name


def gauss_kruger_epsg(width: int, zone_or_cm: int, by_cm: bool) -> int:
    """EPSG code of a CGCS2000 Gauss-Krüger CRS by zone number or central meridian."""
    if width == 3:
        if by_cm and 75 <= zone_or_cm <= 135 and zone_or_cm % 3 == 0:
            return 4534 + (zone_or_cm - 75) // 3
        if not by_cm and 25 <= zone_or_cm <= 45:
            return 4488 + zone_or_cm
    else:
        if by_cm and 75 <= zone_or_cm <= 135 and (zone_or_cm - 75) % 6 == 0:
            return 4502 + (zone_or_cm - 75) // 6
        if not by_cm and 13 <= zone_or_cm <= 23:
            return 4478 + zone_or_cm
    raise CrsError(f"不存在的 CGCS2000 {width}° 高斯-克吕格带：{zone_or_cm}")


def parse_crs(text: str, towgs84: str | None = None) -> SourceCrs:
    """Parse a `--crs` value (see the module docstring) and apply / demand `--towgs84`."""
    return check_datum(_parse_crs(text), towgs84)


def _parse_crs(text: str) -> SourceCrs:
    """The CRS named by a `--crs` value, before the datum check."""
    value = text.strip().lower().replace("_", "-").replace(" ", "")
    if value in ("gcj02", "gcj-02"):
        return SourceCrs("gcj02")
    if value in ("bd09", "bd-09"):
        return SourceCrs("bd09")
    if value in ("wgs84", "cgcs2000"):
        return SourceCrs("epsg", CRS.from_epsg(4326 if value == "wgs84" else 4490))
    gk = _GK.match(value)
    if gk:
        number = int(gk.group(3))
        by_cm = bool(gk.group(2)) or (gk.group(1) is None) or number >= 75
        epsg = gauss_kruger_epsg(int(gk.group(1) or 3), number, by_cm)
        return SourceCrs("epsg", CRS.from_epsg(epsg))
    try:
        crs = CRS.from_epsg(int(value)) if value.isdigit() else CRS.from_user_input(text)
    except CRSError as exc:
        raise CrsError(
            f"无法识别的坐标系：{text}（示例：EPSG:4326、4548、gk117、gcj02、bd09）"
        ) from exc
    return SourceCrs("epsg", crs)


def parse_towgs84(text: str) -> tuple[float, ...]:
    """`dx,dy,dz[,rx,ry,rz,s]` → 3 or 7 finite numbers."""
    try:
        params = tuple(float(p) for p in text.replace("，", ",").split(","))
    except ValueError:
        params = ()
    if len(params) not in (3, 7) or not all(math.isfinite(p) for p in params):
        raise CrsError(
            f"--towgs84 应为 3 个或 7 个数 dx,dy,dz[,rx,ry,rz,s]（米、角秒、ppm）：{text}"
        )
    return params


def legacy_datum(crs: CRS) -> str | None:
    """Chinese name of the legacy datum (北京1954, 西安1980, 新北京54) of a CRS, or None."""
    base = crs.source_crs if crs.is_bound else crs
    geodetic = base.geodetic_crs if base is not None else None
    if geodetic is None or geodetic.datum is None:
        return None
    name = geodetic.datum.name.lower()
    found = next((cn for cn, pattern in LEGACY_DATUMS.items() if re.search(pattern, name)), None)
    if found is None and name.startswith(("unknown", "not specified")):
        found = LEGACY_ELLIPSOIDS.get(geodetic.ellipsoid.semi_major_metre)
    return found


def has_datum_shift(crs: CRS) -> bool:
    """True for a bound CRS (e.g. a .prj with TOWGS84) whose shift to WGS84 is not all zeros."""
    operation = crs.coordinate_operation if crs.is_bound else None
    return operation is not None and any(p.value for p in operation.params)


def with_towgs84(crs: CRS, towgs84: tuple[float, ...]) -> CRS:
    """The same coordinates (projection, ellipsoid) with +towgs84 as the shift to WGS84."""
    base = crs.source_crs if crs.is_bound else crs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "you will likely lose information"
        proj4 = base.to_proj4()
    if not proj4:
        raise CrsError(f"坐标系 {base.name} 无法附加 --towgs84 参数")
    kept = [p for p in proj4.split() if not p.startswith(("+towgs84=", "+type="))]
    return CRS.from_proj4(" ".join([*kept, f"+towgs84={','.join(map(repr, towgs84))}"]))


def check_datum(source: SourceCrs, towgs84: str | None = None) -> SourceCrs:
    """Refuse a Beijing 1954 / Xian 1980 CRS without `--towgs84`; with it, add the shift."""
    datum = legacy_datum(source.crs) if source.kind == "epsg" else None
    if towgs84:
        params = parse_towgs84(towgs84)
        if datum is None:
            raise CrsError(f"--towgs84 只用于北京1954、西安1980 坐标系，源坐标系 {source.label} "
                           "不需要（请用 --crs 指定北京1954 或西安1980 坐标系）")  # fmt: skip
        return SourceCrs("epsg", with_towgs84(source.crs, params), params, source.label)
    if datum is not None and not has_datum_shift(source.crs):
        raise CrsError(
            f"源坐标系 {source.label} 基于{datum}大地基准，与 CGCS2000 相差可达数十米，"
            "不能直接导入。请用 --towgs84 dx,dy,dz[,rx,ry,rz,s] 给出本地区到 WGS84 的"
            "三参数或七参数（布尔莎模型，位置矢量约定，同 PROJ 的 +towgs84；"
            "单位：米、角秒、ppm），或先把数据转换为 CGCS2000"
        )
    return source


def _offset(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 (lon, lat): the public formula."""
    x, y = lon - 105.0, lat - 35.0
    dlat = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
        + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    )
    dlon = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * np.sqrt(np.abs(x))
        + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
        + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
        + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    )
    rad = lat / 180.0 * np.pi
    magic = 1 - EE * np.sin(rad) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sqrt_magic) * np.pi)
    dlon = (dlon * 180.0) / (A / sqrt_magic * np.cos(rad) * np.pi)
    return dlon, dlat  # fmt: skip


def wgs84_to_gcj02(lon, lat):
    """WGS84 → GCJ-02 (forward formula, exact by definition)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    dlon, dlat = _offset(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon, lat, *, tolerance_deg: float = 1e-9, max_iter: int = 30):
    """GCJ-02 → WGS84 by fixed-point iteration on the forward formula (error ≪ 1 m)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    wlon, wlat = lon.copy(), lat.copy()
    for _ in range(max_iter):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        elon, elat = glon - lon, glat - lat
        wlon, wlat = wlon - elon, wlat - elat
        if np.all(np.abs(elon) < tolerance_deg) and np.all(np.abs(elat) < tolerance_deg):
            break
    return wlon, wlat


def gcj02_to_bd09(lon, lat):
    """GCJ-02 → BD-09 (Baidu's public formula)."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    z = np.sqrt(lon * lon + lat * lat) + 0.00002 * np.sin(lat * X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def bd09_to_gcj02(lon, lat):
    """BD-09 → GCJ-02 (Baidu's public inverse formula)."""
    x, y = np.asarray(lon, dtype=float) - 0.0065, np.asarray(lat, dtype=float) - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * X_PI)
    return z * np.cos(theta), z * np.sin(theta)


def bd09_to_wgs84(lon, lat):
    """BD-09 → GCJ-02 → WGS84."""
    return gcj02_to_wgs84(*bd09_to_gcj02(lon, lat))


def wgs84_to_bd09(lon, lat):
    """WGS84 → GCJ-02 → BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _apply(geoms: np.ndarray, func) -> np.ndarray:
    """Apply a vectorised (lon, lat) → (lon, lat) function to every coordinate of geometries."""

    def on_coords(coords: np.ndarray) -> np.ndarray:
        lon, lat = func(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, on_coords)


def to_storage(geoms: np.ndarray, source: SourceCrs) -> np.ndarray:
    """Geometries (a numpy array of shapely objects) in `source` → lon/lat in EPSG:4490."""
    if source.kind == "gcj02":
        return _apply(geoms, gcj02_to_wgs84)
    if source.kind == "bd09":
        return _apply(geoms, bd09_to_wgs84)
    if source.crs.to_epsg() in GEOGRAPHIC_EPSG:
        return geoms
    from pyproj import Transformer

    # A +towgs84 shift leads to WGS84 (taken as CGCS2000); asked for EPSG:4490 directly, PROJ
    # would skip the shift and use a "ballpark" no-op.
    target = 4326 if source.crs.is_bound else STORAGE_EPSG
    transformer = Transformer.from_crs(source.crs, target, always_xy=True)
    return _apply(geoms, transformer.transform)


def metric_epsg(lon: float, lat: float = 0.0) -> int:
    """The metric CRS an analysis works in at (lon, lat): a GK zone in China, else WGS 84 UTM.

    Within CHINA_LON (73.5–135°E, China's span) it is the CGCS2000 3° Gauss-Krüger zone whose
    central meridian is nearest (EPSG:4534–4554); outside it — foreign data such as Boston 311 —
    the WGS 84 UTM zone of the longitude, EPSG:326xx north of the equator and 327xx south (the
    regular 6° zones, without the Norway/Svalbard exceptions). Only the longitude picks the zone;
    the two UTM hemispheres differ by their false northing only, so lengths and areas agree.
    """
    if CHINA_LON[0] <= lon <= CHINA_LON[1]:
        cm = 3 * round(lon / 3)
        return gauss_kruger_epsg(3, min(135, max(75, cm)), True)
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone
