"""Analyses (专题分析): one module each, declared with the small contract of `analytics.contract`.

Importing the package registers every analysis in `analytics.contract.ANALYSES`.
"""

from analytics import (  # noqa: F401
    area_counts,
    case_kpis,
    drainage,
    duplicates,
    emerging,
    heat,
    hotspots,
    park_coverage,
    parking,
    recurring,
    service_coverage,
)
