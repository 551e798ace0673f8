"""Server-rendered SVG line charts (no chart library, nothing inline that the
CSP forbids): geometry for ``templates/_chart.html``."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any

WIDTH, HEIGHT, TOP = 600, 160, 12  # SVG user units; TOP keeps the peak off the edge


def line_chart(
    points: list[tuple[datetime, float]], *, start: datetime, end: datetime,
    log_scale: bool = False, step: bool = False,
) -> dict[str, Any] | None:
    """Geometry of a chart of ``points`` (time, value ≥ 0) between ``start``
    and ``end``: ``{"line", "area", "max", "min", "width", "height"}`` in a
    WIDTH × HEIGHT view box. ``step`` holds each value until the next point
    and to ``end`` (a record that stands until it is beaten); ``log_scale``
    spaces values by order of magnitude. None with fewer than two points
    (one for a step chart)."""
    points = [(at, value) for at, value in points if value is not None and (value > 0 or not log_scale)]
    if len(points) < (1 if step else 2):
        return None
    if step:
        stepped = []
        for i, (at, value) in enumerate(points):
            if i:
                stepped.append((at, points[i - 1][1]))
            stepped.append((at, value))
        stepped.append((end, points[-1][1]))
        points = stepped
    span = max((end - start).total_seconds(), 1.0)
    scale = math.log10 if log_scale else (lambda v: v)
    low = scale(min(v for _, v in points)) if log_scale else 0.0
    high = scale(max(v for _, v in points))
    if high <= low:
        high = low + 1.0
    coords = []
    for at, value in points:
        x = max(0.0, min(WIDTH, (at - start).total_seconds() / span * WIDTH))
        y = HEIGHT - (scale(value) - low) / (high - low) * (HEIGHT - TOP)
        coords.append(f"{x:.1f},{y:.1f}")
    line = " ".join(coords)
    first_x, last_x = coords[0].split(",")[0], coords[-1].split(",")[0]
    return {
        "line": line,
        "area": f"{first_x},{HEIGHT} {line} {last_x},{HEIGHT}",
        "max": max(v for _, v in points),
        "min": min(v for _, v in points),
        "width": WIDTH,
        "height": HEIGHT,
    }
