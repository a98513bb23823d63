"""Reports: the summary statistics by hand, figures for any dimension, atomic writes."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from madloop import report


def test_summary_is_mean_t_interval_and_median_over_finite_seeds():
    # generation 0: values 1, 2, 3 (finite) and 100 from a seed marked non-finite, which must be left out.
    table = pd.DataFrame(
        {"seed": [0, 1, 2, 3], "generation": [0] * 4, "m": [1.0, 2.0, 3.0, 100.0], "finite": [1, 1, 1, 0]}
    )
    s = report.summarize(table, "m").loc[0]
    half = scipy.stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # sd of (1, 2, 3) is 1
    assert (s["mean"], s["median"], s["n"]) == (2.0, 2.0, 3)
    assert s["lo"] == pytest.approx(2 - half) and s["hi"] == pytest.approx(2 + half)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_figures_for_any_dimension(tmp_path, dim):
    rng = np.random.default_rng(0)
    heldout = rng.standard_normal((200, dim))
    snapshots = rng.standard_normal((2, 3, 50, dim))  # [seeds, snapshots, m, d]
    report.plot_samples(heldout, snapshots, np.array([0, 5, 10]), tmp_path / "samples.png")
    table = pd.DataFrame(
        {
            "seed": np.repeat([0, 1], 3),
            "generation": np.tile([0, 1, 2], 2),
            "a": rng.random(6),
            "finite": [1, 1, 1, 1, 0, 0],
        }
    )
    report.plot_metrics(table, tmp_path / "metrics.png", title="t")
    assert (tmp_path / "samples.png").stat().st_size > 0 and (tmp_path / "metrics.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.png", "samples.png"]  # no temp files left


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old")

    def failing(path):
        path.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        report.atomic_write(target, failing)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]
