"""Running an analysis from a panel: the same service as GET /api/analytics/<id>."""

from __future__ import annotations

from analytics.contract import result_cache, run_analysis
from auth.web import current_user
from runtime import runtime


def run(analysis_id: str, params: dict) -> dict:
    """Run an analysis for the signed-in user with the app's result cache, on a read connection."""
    with runtime().reads.connect() as conn:
        return run_analysis(conn, current_user(), analysis_id, params, result_cache(runtime()))
