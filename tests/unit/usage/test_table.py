"""UsageTable's keys read back exactly as written, whatever the ids hold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tollway.usage import table

IDS = st.text(min_size=1, max_size=40)
PERIODS = st.sampled_from(["2026-11", "2026-11-27", "2026-02-01", "2027-12"])


@given(consumer=IDS, route=IDS, period=PERIODS)
def test_a_route_totals_key_reads_back_its_route(consumer: str, route: str, period: str) -> None:
    key = table.totals_key(consumer, period, route)
    assert key["pk"]["S"] == table.consumer_pk(consumer)
    assert table.route_of(key["sk"]["S"], period) == route
    assert table.route_of(table.totals_key(consumer, period)["sk"]["S"], period) is None


@given(consumer=IDS, period=PERIODS)
def test_the_period_index_reads_back_its_consumer(consumer: str, period: str) -> None:
    key = table.index_key(period, consumer)
    assert key["pk"]["S"] == table.index_pk(period)
    assert table.indexed_consumer(key) == consumer


def test_a_day_and_its_month_never_share_a_key() -> None:
    day = table.totals_key("c", "2026-11-27", "r")["sk"]["S"]
    assert table.route_of(day, "2026-11") is None
    assert table.route_of(day, "2026-11-27") == "r"


@pytest.mark.parametrize("period", ["2026-13", "26-11", "2026-11-32", "", "2026-11-27#x"])
def test_a_bad_period_is_refused(period: str) -> None:
    with pytest.raises(ValueError):
        table.period_sk(period)
