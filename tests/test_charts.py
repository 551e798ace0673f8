"""Server-rendered SVG charts: geometry and the profile's best-difficulty progression."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from webapp.extensions import db
from webapp.models import MiningEvent
from webapp.pages.charts import HEIGHT, TOP, WIDTH, line_chart

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _xy(chart):
    return [tuple(float(v) for v in pair.split(",")) for pair in chart["line"].split()]


def test_line_chart_spans_the_view_box():
    chart = line_chart([(T0, 0.0), (T0 + timedelta(hours=12), 5.0), (T0 + timedelta(hours=24), 10.0)],
                       start=T0, end=T0 + timedelta(hours=24))
    assert _xy(chart) == [(0.0, HEIGHT), (WIDTH / 2, HEIGHT - (HEIGHT - TOP) / 2), (WIDTH, TOP)]
    assert chart["max"] == 10.0


def test_step_chart_on_a_log_scale_holds_each_record_until_beaten():
    points = [(T0, 1_000.0), (T0 + timedelta(hours=1), 1_000_000.0)]
    chart = line_chart(points, start=T0, end=T0 + timedelta(hours=2), log_scale=True, step=True)
    # 1k at the bottom, held until the 1M record, which is held to the end at the top.
    assert _xy(chart) == [(0.0, HEIGHT), (WIDTH / 2, HEIGHT), (WIDTH / 2, TOP), (WIDTH, TOP)]
    assert line_chart([(T0, 5.0)], start=T0, end=T0 + timedelta(hours=1)) is None


def test_profile_page_draws_the_best_difficulty_progression(client, make_user):
    user = make_user(display_name="Charted")
    for i, best in enumerate([16089.3, 18674.3, 4363291.8]):
        db.session.add(MiningEvent(stream="mining:share_best_diff", entry_id=f"{i}-0", event="share_best_diff",
                                   ts=T0 + timedelta(hours=i), user_id=user.user_id, worker=f"{user.user_id}.w1",
                                   data={"new_best": best, "prev_best": 0, "timeframe": "alltime"}))
    db.session.commit()
    page = client.get(f"/miners/{user.user_id}").get_data(as_text=True)
    assert 'id="best-progression"' in page
    assert "16.1K" in page and "4.36M" in page
    assert page.count('class="line" points="') == 1
