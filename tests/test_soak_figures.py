"""The soak's figure (bench/memory.py): RSS growth over the last 30 minutes of an hour."""

from __future__ import annotations

import pytest

from bench.memory import HOUR, TAIL, WARMUP, tail_figures

END = WARMUP + HOUR


def series(
    rss: float, slope_per_minute: float, *, bump_at: float | None = None
) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    t = 0.0
    while t <= END:
        value = rss + slope_per_minute * t / 60
        if bump_at is not None and abs(t - bump_at) < 1:
            value += 5.0  # one sample's spike (a scrape, a big page)
        out.append((t, value))
        t += 2.0
    return out


def test_a_plateau_has_no_growth_even_with_a_spike() -> None:
    figures = tail_figures(series(64.0, 0.0, bump_at=END - 600), end=END, window=TAIL)
    assert figures["tail_growth_mb"] == 0.0
    assert figures["tail_range_mb"] == pytest.approx(5.0)
    assert figures["tail_samples"] == TAIL / 2 + 1


def test_a_creep_shows_as_its_growth_over_the_window() -> None:
    figures = tail_figures(series(64.0, 0.2), end=END, window=TAIL)
    assert figures["tail_growth_mb"] == pytest.approx(0.2 * 30, abs=0.1)
    assert figures["tail_slope_mb_per_minute"] == pytest.approx(0.2)
    assert figures["tail_growth_mb"] > 1.0  # the target would be missed
