"""Analyses (专题分析): one module each, declared with the small contract of `analytics.contract`.

Importing the package registers every analysis in `analytics.contract.ANALYSES`.
"""

from analytics import area_counts, heat, hotspots, park_coverage, service_coverage  # noqa: F401
