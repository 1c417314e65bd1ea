"""Reasons for rejected or flagged rows, the import report, its summary and its JSON form."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

REJECT = "rejected"
FLAG = "flagged"

# machine code → (Chinese reason, severity)
REASONS: dict[str, tuple[str, str]] = {
    "empty_geometry": ("坐标或几何为空", REJECT),
    "invalid_geometry": ("几何无效且无法在保持类型的前提下修复", REJECT),
    "geometry_repaired": ("几何无效，已用 make_valid 修复", FLAG),
    "wrong_geometry_type": ("几何类型与图层不符", REJECT),
    "outside_lonlat": ("坐标超出经纬度范围（投影坐标请用 --crs 指定坐标系）", REJECT),
    "outside_extent": ("位置超出城市范围", REJECT),
    "missing_field": ("缺少必填字段", REJECT),
    "bad_value": ("字段值无法识别", REJECT),
    "bad_code": ("编码格式错误", REJECT),
    "class_mismatch": ("编码中的类别与类别字段不一致", REJECT),
    "community_mismatch": ("网格编码与所属社区编码不一致", REJECT),
    "district_mismatch": ("编码中的区县与所在位置的区县不一致", REJECT),
    "parent_mismatch": ("行政区划编码与上级编码不一致", REJECT),
    "unknown_reference": ("引用的编码在数据库中不存在", REJECT),
    "duplicate_key": ("文件内编码重复", REJECT),
    "key_exists": ("编码在数据库中已存在（可用 --mode upsert 更新）", REJECT),
    "date_order": ("时间先后顺序错误", REJECT),
    "stacked_coordinate": ("多行堆叠在同一坐标（疑似地理编码占位点）", FLAG),
    "possible_duplicate": ("疑似重复上报：附近同类未结案件（相似案卷，仍导入）", FLAG),
}


@dataclass
class Issue:
    """One reason a row was rejected or flagged."""

    row: int  # 1-based data row (feature) number in the file, header not counted
    key: str | None
    code: str
    detail: str = ""

    @property
    def severity(self) -> str:
        """`rejected` or `flagged`."""
        return REASONS[self.code][1]

    def as_dict(self) -> dict:
        """JSON form with the Chinese reason."""
        return {"row": self.row, "key": self.key, "code": self.code,
                "reason": REASONS[self.code][0], "detail": self.detail,
                "severity": self.severity}  # fmt: skip


@dataclass
class Report:
    """Counts and every rejected or flagged row of one import."""

    layer: str
    file: str
    mode: str
    strict: bool
    crs: str = ""
    extent: list[float] | None = None
    read: int = 0
    loaded: int = 0
    file_rejected: bool = False
    error: str | None = None
    issues: list[Issue] = field(default_factory=list)
    stacked_coordinates: list[dict] = field(default_factory=list)
    possible_duplicates: list[dict] = field(default_factory=list)  # row, code, match_code, score…

    def rows_with(self, severity: str) -> set[int]:
        """Row numbers with at least one issue of this severity."""
        return {i.row for i in self.issues if i.severity == severity}

    @property
    def rejected(self) -> int:
        """Rows not loaded because of an error (the whole file when it was rejected)."""
        return self.read if self.file_rejected else len(self.rows_with(REJECT))

    @property
    def flagged(self) -> int:
        """Rows carrying a warning only (they load)."""
        return len(self.rows_with(FLAG) - self.rows_with(REJECT))

    def by_reason(self) -> dict[str, dict]:
        """Per machine code: Chinese reason, severity, number of rows."""
        counts = Counter(i.code for i in self.issues)
        return {code: {"reason": REASONS[code][0], "severity": REASONS[code][1], "count": n}
                for code, n in sorted(counts.items(), key=lambda kv: -kv[1])}  # fmt: skip

    def as_dict(self) -> dict:
        """The JSON report."""
        data = {k: v for k, v in asdict(self).items() if k not in ("issues",)}
        data.update(rejected=self.rejected, flagged=self.flagged, reasons=self.by_reason(),
                    rows=[i.as_dict() for i in sorted(self.issues, key=lambda i: i.row)])  # fmt: skip
        return data

    def write_json(self, path: Path) -> None:
        """Write the JSON report (UTF-8, Chinese kept readable)."""
        Path(path).write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=1), "utf-8")

    def summary(self) -> str:
        """The short printed summary."""
        lines = [f"导入 {self.layer} ← {self.file}（坐标系 {self.crs or '未知'}，模式 {self.mode}"
                 + ("，严格" if self.strict else "") + "）",
                 f"读取 {self.read} 行，导入 {self.loaded} 行，拒绝 {self.rejected} 行，"
                 f"标记 {self.flagged} 行"]  # fmt: skip
        for code, item in self.by_reason().items():
            word = "拒绝" if item["severity"] == REJECT else "标记"
            lines.append(f"  {word} {code} {item['reason']}：{item['count']}")
        for s in self.stacked_coordinates[:5]:
            lines.append(f"  堆叠坐标 ({s['lon']}, {s['lat']})：{s['count']} 行")
        for f in self.possible_duplicates[:5]:
            lines.append(
                f"  疑似重复 第 {f['row']} 行 {f['code']} ≈ {f['match_code']}"
                f"（相似度 {f['score']:.2f}）"
            )
        if self.error:
            lines.append(f"错误：{self.error}")
        return "\n".join(lines)
