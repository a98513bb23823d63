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


def fake_job(folder, overrides, lam_values, seeds=2, generations=2):
    """A job folder like Hydra's: metrics.csv (with a swept lam column) and .hydra/overrides.yaml."""
    rows = []
    for lam in lam_values:
        for s in range(seeds):
            for g in range(generations + 1):
                rows.append({"seed": s, "lam": lam, "generation": g, "recall": lam * 10 + s + g / 10, "finite": 1})
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "metrics.csv", index=False)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def test_report_aggregates_a_multirun_and_draws_a_phase_map(tmp_path, capsys):
    # Two jobs differ in regime.n_real (a count: one job each) and share loop.seeds; each sweeps lam in-program.
    fake_job(tmp_path / "0", ["regime.n_real=64", "loop.seeds=2"], [0.5, 1.0])
    fake_job(tmp_path / "1", ["regime.n_real=128", "loop.seeds=2"], [0.5, 1.0])
    table, factors = report.collect(tmp_path)
    assert factors == ["regime.n_real", "lam"]  # loop.seeds is the same in both jobs, so it is no factor
    assert len(table) == 2 * 2 * 2 * 3 and list(table.columns[:3]) == ["job", "regime.n_real", "seed"]
    # Phase map at generation 2: mean over seeds 0, 1 of lam * 10 + s + 0.2 = lam * 10 + 0.7, for either n_real
    grid = report.phase_map(table, "recall", "lam", "regime.n_real", 2)
    assert list(grid.index) == [64, 128] and list(grid.columns) == [0.5, 1.0]
    np.testing.assert_allclose(grid.to_numpy(), [[5.7, 10.7], [5.7, 10.7]])
    report.main([str(tmp_path)])
    for name in ("report.csv", "report_metrics.png", "report_phase_recall.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "24 rows from 2 job(s), factors: regime.n_real, lam" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--x", "nope", "--y", "lam"], "error: --x=nope: allowed: regime.n_real, lam"),
        (["--metrics", "fid"], "fid"),
        (["--generation", "7"], "error: --generation=7: allowed: the evaluated generations 0, 1, 2"),
    ],
)
def test_report_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    fake_job(tmp_path / "0", ["regime.n_real=64"], [0.5, 1.0])
    fake_job(tmp_path / "1", ["regime.n_real=128"], [0.5, 1.0])
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and message in err
    assert not (tmp_path / "report.csv").exists()  # nothing is written for bad input


def test_a_job_without_a_factors_override_keeps_its_rows_under_its_config_value(tmp_path):
    """A job that left bias.lam at its default (no override) is grouped under its config's value, not None:
    grouping by a factor drops None rows, and that job's curve went missing from report_metrics.png."""
    fake_job(tmp_path / "0", ["bias.lam=0.8"], [1.0])
    fake_job(tmp_path / "1", [], [1.0])
    (tmp_path / "1" / "config.yaml").write_text("bias:\n  lam: 1.0\n")
    fake_job(tmp_path / "2", [], [1.0])  # no config at all: "default"
    table, factors = report.collect(tmp_path)
    assert factors == ["bias.lam"]
    # a column of numbers and "default" is text throughout (a mixed column cannot be sorted to plot)
    assert table.groupby("job")["bias.lam"].first().to_dict() == {"0": "0.8", "1": "1.0", "2": "default"}
    report.main([str(tmp_path)])
    assert (tmp_path / "report_metrics.png").stat().st_size > 0


def test_report_on_an_empty_folder_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(tmp_path)])
    assert exit_info.value.code == 2 and "no metrics.csv" in capsys.readouterr().err


def test_the_report_knows_every_swept_knob_column():
    # A swept knob's column must not be read as a metric (it would be drawn and aggregated as one): the report's
    # list is the knob table's names, which name the columns of knob_grid.
    from madloop.knobs import KNOBS

    assert report.knob_names() == tuple(k.name for k in KNOBS)


def test_jobs_with_and_without_a_knob_sweep_all_keep_their_rows(tmp_path):
    """One job sweeps lam in-program (a lam column), another runs one lam (no column): the second job's rows take
    its config's lam (NaN lam rows were dropped by grouping, and its curve went missing); ++key counts as key."""
    fake_job(tmp_path / "0", ["regime.n_real=64"], [0.5, 1.0])
    fake_job(tmp_path / "1", ["++regime.n_real=128"], [0.5])
    table = pd.read_csv(tmp_path / "1" / "metrics.csv").drop(columns=["lam"])
    table.to_csv(tmp_path / "1" / "metrics.csv", index=False)
    (tmp_path / "1" / "config.yaml").write_text("bias:\n  lam: 0.7\n")
    out, factors = report.collect(tmp_path)
    assert factors == ["regime.n_real", "lam"]
    assert out.groupby("job")["lam"].unique().map(sorted).to_dict() == {"0": [0.5, 1.0], "1": [0.7]}
    assert len(out.groupby(factors)) == 3 and not out["lam"].isna().any()
