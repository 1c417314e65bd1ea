"""Chinese names for demo roads, communities, parks and places (deterministic for a seed)."""

from __future__ import annotations

import numpy as np

DIGITS = "零一二三四五六七八九"
ROOTS = list(
    "文化山水泉明湖花园华阳光和平安康福寿金玉青松柏桂兰荷锦绣新兴丰盛永乐长宁顺德"
    "开元天成东西南北中舜耕历山千佛燕子千秋趵突黑虎大明经纬"
)
PLACE_KINDS = ("农贸市场", "小学", "中学", "医院", "商场", "超市", "写字楼", "酒店", "银行", "饭店")


def chinese_number(n: int) -> str:
    """1..99 as Chinese numerals (经十路, 纬二十一路)."""
    if n < 10:
        return DIGITS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else DIGITS[tens]
    return head + "十" + (DIGITS[ones] if ones else "")


class NamePool:
    """Unique two-character names drawn from common roots."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.used: set[str] = set()

    def take(self, suffix: str) -> str:
        """A fresh name ending in suffix (路, 街, 巷, 社区, 公园…)."""
        for _ in range(200):
            a, b = self.rng.choice(ROOTS, size=2, replace=False)
            name = f"{a}{b}{suffix}"
            if name not in self.used:
                self.used.add(name)
                return name
        name = f"{self.rng.choice(ROOTS)}{len(self.used)}{suffix}"
        self.used.add(name)
        return name


def road_name(pool: NamePool, road_class: str, vertical: bool, index: int) -> str:
    """Name of a road line: main roads are 经X路 (east-west) / 纬X路 (north-south)."""
    if road_class == "主干路":
        return ("纬" if vertical else "经") + chinese_number(index // 8 + 1) + "路"
    return pool.take({"次干路": "路", "支路": "街", "街巷": "巷"}[road_class])
