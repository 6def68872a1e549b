"""Binned sums per day and segment, windows, and each window's metrics with intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from calibbench.errors import InputError
from calibbench.metrics import bootstrap_ci, brier, ece, reliability
from calibbench.monitor.windows import (
    Cells,
    Coded,
    DailyCells,
    Window,
    WindowSpec,
    cells_reliability,
    window_metrics,
)

DAY0 = int(np.datetime64("2024-01-30", "D").astype(np.int64))


def stream(n: int, seed: int, days: int = 40):
    rng = np.random.default_rng(seed)
    day = np.sort(rng.integers(DAY0, DAY0 + days, n))
    c = rng.beta(5, 1.5, n)
    c[:3] = (0.0, 1.0, 0.5)  # the bins' edges
    y = rng.uniform(size=n) < 0.8 * c + 0.1
    segment = rng.integers(0, 3, n)
    return day, c, y, segment


def test_cells_hold_each_bins_counts_and_power_sums():
    _, c, y, _ = stream(500, seed=1)
    cells = Cells.of(c, y, n_bins=10)
    for outcome in (0, 1):
        for b in range(10):
            inside = (y == outcome) & (np.minimum(np.floor(c * 10), 9) == b)
            assert cells.count[outcome, b] == inside.sum()
            for k in range(4):
                assert cells.sums[outcome, b, k] == pytest.approx((c[inside] ** (k + 1)).sum())


def test_window_metrics_equal_their_definitions_on_the_items():
    _, c, y, _ = stream(3000, seed=2)
    got = window_metrics(Cells.of(c, y, n_bins=15), n_resamples=2000, seed=1)
    z = norm.ppf(0.975)
    assert got["n"] == 3000
    assert got["ece"]["estimate"] == pytest.approx(ece(c, y, n_bins=15), abs=1e-12)
    assert got["brier"]["estimate"] == pytest.approx(brier(c, y), abs=1e-12)
    wilson = reliability(c, y, n_bins=1).to_frame().iloc[0]  # one bin: the overall accuracy
    assert (got["accuracy"]["low"], got["accuracy"]["high"]) == pytest.approx(
        (wilson.ci_low, wilson.ci_high), abs=1e-12
    )
    for name, values in (
        ("mean_confidence", c),
        ("overconfidence", c - y),
        ("brier", (c - y) ** 2),
    ):
        half = z * values.std(ddof=1) / np.sqrt(len(values))
        assert (got[name]["estimate"], got[name]["low"], got[name]["high"]) == pytest.approx(
            (values.mean(), values.mean() - half, values.mean() + half), abs=1e-9
        )
    item = bootstrap_ci(ece, c, y, n_resamples=2000, seed=1, n_bins=15)
    assert got["ece"]["low"] == pytest.approx(item.low, abs=0.004)
    assert got["ece"]["high"] == pytest.approx(item.high, abs=0.004)


def test_cells_reliability_equals_the_item_level_diagram():
    _, c, y, _ = stream(800, seed=3)
    got = cells_reliability(Cells.of(c, y, n_bins=12), level=0.9)
    want = reliability(c, y, n_bins=12, level=0.9).to_frame()
    assert np.allclose(got.to_numpy(float), want.to_numpy(float), equal_nan=True)


def _update(acc: DailyCells, day, c, y, segment) -> None:
    labels = ["a", "b", "c"]
    acc.update(day, c, y, {"task": Coded(segment, labels)})


def test_daily_cells_are_the_same_however_the_stream_is_split_and_merged():
    day, c, y, segment = stream(2000, seed=4)
    one = DailyCells(10, ("task",))
    _update(one, day, c, y, segment)
    parts = [DailyCells(10, ("task",)) for _ in range(3)]
    order = np.random.default_rng(0).permutation(2000)  # any split, in any order
    for i, chunk in enumerate(np.array_split(order, 7)):
        _update(parts[i % 3], day[chunk], c[chunk], y[chunk], segment[chunk])
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    window = Window(DAY0 + 5, DAY0 + 20)
    for label in one.labels:
        mine, theirs = one.labels.index(label), parts[0].labels.index(label)
        a, b = one.cells(mine, window), parts[0].cells(theirs, window)
        assert np.array_equal(a.count, b.count) and np.allclose(a.sums, b.sums, rtol=1e-9)
    inside = (day >= window.start) & (day <= window.end) & (segment == 1)
    direct = Cells.of(c[inside], y[inside], 10)
    got = one.cells(one.labels.index(("task", "b")), window)
    assert np.array_equal(got.count, direct.count) and np.allclose(got.sums, direct.sums)
    assert one.days == (int(day.min()), int(day.max()))


def test_calendar_and_rolling_windows():
    first = DAY0  # 2024-01-30, a Tuesday
    last = first + 40  # 2024-03-10, a Sunday
    months = WindowSpec.parse("month").windows(first, last)
    assert [w.label for w in months] == [
        "2024-01-01..2024-01-31",
        "2024-02-01..2024-02-29",
        "2024-03-01..2024-03-31",
    ]
    weeks = WindowSpec.parse("week").windows(first, last)
    assert weeks[0].label == "2024-01-29..2024-02-04" and weeks[-1].end == last
    rolling = WindowSpec.parse("14D", "7D").windows(first, last)
    assert rolling[-1] == Window(last - 13, last)
    assert all(w.end - w.start == 13 for w in rolling[1:])
    assert rolling[0].start == first and [w.end for w in rolling][-2] == last - 7
    blocks = WindowSpec.parse("30D").windows(first, last)
    assert blocks == [Window(first, last - 30), Window(last - 29, last)]
    assert WindowSpec.parse("month").latest_start(last) == last - 9


@pytest.mark.parametrize(
    ("window", "step", "match"),
    [
        ("fortnight", None, "--window: expected day, week, month"),
        ("30D", "7", "--step: expected a number of days"),
        ("month", "7D", "--step: calendar windows"),
    ],
)
def test_bad_window_specs_name_the_option(window, step, match):
    with pytest.raises(InputError, match=match):
        WindowSpec.parse(window, step)
