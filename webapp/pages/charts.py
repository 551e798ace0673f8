"""The charts' text: what a chart's ``<figure>`` says without JavaScript
(a table of figures and a one-sentence summary for its ``aria-label``).
The drawing is static/js/charts.js (uPlot) from the same service's JSON."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import request

from ..formatting import format_difficulty, format_hashrate
from ..services import hashrate
from ..services.errors import ValidationError

RANGE_WORDS = {"1h": "the last hour", "24h": "the last 24 hours", "7d": "the last 7 days", "30d": "the last 30 days"}
RANGE_LABELS = {"1h": "1 h", "24h": "24 h", "7d": "7 d", "30d": "30 d"}


def page_range() -> hashrate.ChartRange:
    """The ``?range=`` of a page with charts; a missing or unknown one is
    24 h (a page never fails on it; the JSON routes answer 400)."""
    try:
        return hashrate.chart_range(request.args.get("range"))
    except ValidationError:
        return hashrate.RANGES[hashrate.DEFAULT_RANGE]


def hashrate_view(chart: hashrate.Chart) -> dict[str, Any]:
    """``{"chart", "rows": [{"label", "now", "mean", "peak"}], "summary"}``
    of a hashrate chart, values formatted ("1.2 TH/s"; "—" when unknown);
    the summary names the first series (the total)."""
    rows = []
    for series in chart.series:
        figures = series.summary()
        rows.append({"label": series.label, **{
            key: "—" if figures[key] is None else format_hashrate(figures[key])
            for key in ("last", "mean", "peak")}})
    words = RANGE_WORDS[chart.range.name]
    if rows and rows[0]["peak"] != "—":
        first = rows[0]
        summary = (f"{first['label']} over {words}: now {first['last']}, average {first['mean']}, "
                   f"peak {first['peak']}.")
    else:
        summary = f"No hashrate recorded over {words}."
    return {"chart": chart, "rows": rows, "summary": summary}


def best_view(chart: hashrate.Chart) -> dict[str, Any]:
    """``{"chart", "rows": [{"at", "best"}], "summary"}`` of the best
    difficulty chart: the records set in the range, newest first."""
    values = chart.series[0].values if chart.series else []
    points = list(zip(chart.timestamps, values, strict=True))
    records = points[1:-1] if points and points[0][0] == int(chart.start.timestamp()) else points[:-1]
    rows = [{"at": datetime.fromtimestamp(at, UTC), "best": format_difficulty(best)} for at, best in reversed(records)]
    words = RANGE_WORDS[chart.range.name]
    if not points:
        summary = "No best difficulty recorded yet."
    elif len({v for _, v in points}) > 1:
        summary = (f"Best difficulty over {words} rose from {format_difficulty(points[0][1])} "
                   f"to {format_difficulty(points[-1][1])}, log scale.")
    else:
        summary = f"No new record over {words}; the best stands at {format_difficulty(points[-1][1])}."
    return {"chart": chart, "rows": rows, "summary": summary}
