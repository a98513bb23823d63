"""Outputs at sweep scale: the eval.every stride, Parquet tables, and the experiment trackers (offline)."""

import glob
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import madloop
from madloop import config as C
from madloop import report, trackers
from madloop.engine import simulation
from madloop.loop import evaluated_generations, snapshot_generations

GAUSS = ["data=gaussian", "model=gaussian", "loop.seeds=3", "eval.n=64", "regime.n_real=32", "regime.n_synth=32"]


def test_every_keeps_the_strided_rows_of_the_full_run():
    # G = 11, every = 4: rows for generations 0, 4, 8 and G = 11, identical to the every-generation run's rows
    # (the same keys evaluate the same parameters); a stride that evaluated generation g - 1's parameters, or used
    # another generation's evaluation key, would move the sample metrics. (One program each; the chunked path is
    # the next test's.)
    base = [*GAUSS, "loop.generations=11", "loop.chunk=11", "eval.snapshots=2"]
    full = madloop.run_table(base)
    strided = madloop.run_table([*base, "eval.every=4"])
    assert sorted(strided["generation"].unique()) == [0, 4, 8, 11]
    assert strided["generation"].dtype == full["generation"].dtype
    expected = full[full["generation"].isin([0, 4, 8, 11])].reset_index(drop=True)
    # (atol: MMD is a difference of kernel means of about 0.5, which two programs may sum in another order, 1e-7
    # apart in float32; another generation's parameters or key moves it by 1e-2)
    pd.testing.assert_frame_equal(strided, expected, rtol=1e-6, atol=1e-6)
    # the snapshots are taken at evaluated generations: linspace(0, 11, 4) = 0, 3.67, 7.33, 11 -> 0, 4, 8, 11
    cfg = madloop.compose([*base, "eval.every=4"])
    assert list(snapshot_generations(cfg)) == [0, 4, 8, 11]
    assert list(evaluated_generations(cfg)) == [0, 4, 8, 11]
    assert list(snapshot_generations(madloop.compose(base))) == [0, 4, 7, 11]


@pytest.mark.parametrize(
    "generations, every, snapshots, want",
    [
        (10, 4, 2, [0, 4, 8, 10]),  # linspace 0, 3.3, 6.7, 10: G stays although 10 is not a multiple of 4
        (50, 100, 3, [0, 50]),  # a stride past G evaluates 0 and G only
        (100, 7, 3, [0, 28, 49, 77, 100]),  # 25 -> 28, 50 -> 49, 75 -> 77 (nearest multiples of 7)
    ],
)
def test_snapshots_are_evaluated_generations_and_keep_g(generations, every, snapshots, want):
    cfg = madloop.compose([f"loop.generations={generations}", f"eval.every={every}", f"eval.snapshots={snapshots}"])
    assert list(snapshot_generations(cfg)) == want
    assert set(want) <= set(evaluated_generations(cfg))


def test_rows_arrive_once_each_in_order_with_chunks_and_a_stride():
    cfg = madloop.compose([*GAUSS, "loop.generations=7", "loop.chunk=3", "eval.every=2"])
    seen: list[tuple[list[int], dict]] = []
    result = simulation(cfg)(on_rows=lambda gens, rows: seen.append((list(gens), rows)))
    # chunks end at generations 0 | 3 | 6 | 7: the evaluated ones among them, each once
    assert [g for g, _ in seen] == [[0], [2], [4, 6], [7]]
    got = np.concatenate([rows.metrics["trace_ratio"] for _, rows in seen], axis=1)
    np.testing.assert_array_equal(got, result.metrics["trace_ratio"])
    assert list(result.generations) == [0, 2, 4, 6, 7]


def test_summaries_by_hand():
    # 3 runs x 2 generations, two grid points: runs 0, 1 at lam 0.5 and run 2 at lam 1; run 1 diverged at
    # generation 1 (finite 0, its value ignored even though it is a number).
    metrics = {"m": np.array([[1.0, 2.0], [3.0, 100.0], [5.0, 6.0]])}
    finite = np.array([[1, 1], [1, 0], [1, 1]])
    groups = {"lam_0.5/": np.array([True, True, False]), "lam_1/": np.array([False, False, True])}
    out = trackers.summaries(metrics, finite, groups, per_seed=True, seed=np.array([0, 1, 0]))
    assert out[0]["lam_0.5/m/mean"] == 2.0 and out[0]["lam_0.5/m/median"] == 2.0  # (1 + 3) / 2
    assert out[1]["lam_0.5/m/mean"] == 2.0 and out[1]["lam_0.5/finite"] == 0.5  # run 1 left out
    assert out[1]["lam_1/m/mean"] == 6.0 and out[1]["lam_1/finite"] == 1.0
    assert out[1]["lam_0.5/seed_0/m"] == 2.0 and "lam_0.5/seed_1/m" not in out[1]
    # a metric with no finite run at a generation is left out of that generation
    none = trackers.summaries({"m": np.array([[np.nan]])}, np.array([[0]]), {"": np.array([True])})
    assert none == [{"finite": 0.0}]


def test_tracker_keys_are_exact_and_mlflow_safe():
    # {v:g} would print 1e6 as 1e+06 (MLflow refuses "+") and 1234567 and 1234568 both as 1.23457e+06
    values = (0.5, 1.0, 1e6, 1234567, 1234568, 1e-7, 3)
    want = ["0.5", "1", "1000000", "1234567", "1234568", "0.0000001", "3"]
    assert [trackers.key_value(v) for v in values] == want


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} from TensorBoard event files (TFRecords: length, its CRC, the Event, its CRC)."""
    from tensorboardX.proto import event_pb2

    tags: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(str(folder / "events.out.tfevents.*"))):
        data, i = Path(path).read_bytes(), 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event()
            event.ParseFromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                tags.setdefault(v.tag, []).append((event.step, v.simple_value))
    return tags


def test_cli_parquet_tables_and_a_tensorboard_tracker(tmp_path):
    from test_cli import cli

    args = [*GAUSS, "loop.generations=5", "eval.every=2", "sweep.bias.lam=[0.5,1.0]", "plots=false"]
    proc = cli([*args, "logger=tensorboard", "output.format=parquet", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "run"
    assert not (out / "metrics.csv").exists() and not (out / "floors.csv").exists()
    table = pd.read_parquet(out / "metrics.parquet")
    assert sorted(table["generation"].unique()) == [0, 2, 4, 5] and len(table) == 2 * 3 * 4
    pd.testing.assert_frame_equal(table, madloop.run_table(args), check_dtype=False, rtol=1e-6)
    assert len(pd.read_parquet(out / "floors.parquet")) == 3
    # the tracker logged the mean over seeds of each grid point at each evaluated generation, and the config
    scalars = tensorboard_scalars(out / "tensorboard")
    for lam in (0.5, 1.0):
        got = scalars[f"lam_{lam:g}/trace_ratio/mean"]
        want = table[table["lam"] == lam].groupby("generation")["trace_ratio"].mean()
        assert [s for s, _ in got] == [0, 2, 4, 5]
        np.testing.assert_allclose([v for _, v in got], want.to_numpy(), rtol=1e-6)
    assert "config/text_summary" in scalars or any("config" in t for t in scalars)
    # the report reads the Parquet table
    report.main([str(out)])
    assert len(pd.read_csv(out / "report.csv")) == len(table)


def test_report_collects_csv_and_parquet_jobs(tmp_path):
    a = pd.DataFrame({"seed": [0, 0], "generation": [0, 1], "m": [1.0, 2.0], "finite": [1, 1]})
    for job in ("0", "1", "2"):
        (tmp_path / job).mkdir()
    report.write_table(a, tmp_path / "0" / "metrics.csv")
    report.write_table(a.assign(m=[3.0, 4.0]), tmp_path / "1" / "metrics.parquet")
    # a folder with both: its Parquet table is read, not both
    report.write_table(a.assign(m=[9.0, 9.0]), tmp_path / "2" / "metrics.csv")
    report.write_table(a.assign(m=[5.0, 6.0]), tmp_path / "2" / "metrics.parquet")
    table, _ = report.collect(tmp_path)
    assert list(table["job"]) == ["0", "0", "1", "1", "2", "2"]
    assert list(table["m"]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    # the report's tables read back alike from either format: job names as text, not integers from the CSV
    for name in ("r.csv", "r.parquet"):
        report.write_table(table, tmp_path / name)
        pd.testing.assert_frame_equal(report.read_table(tmp_path / name), table)


def test_mlflow_tracker_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = trackers.open_tracker(trackers.MlflowLogger(), tmp_path, {"model": {"components": 8}, "loop": {}})
    tracker.log(0, {"trace_ratio/mean": 1.0, "lam_0.5/finite": 1.0})
    tracker.log(3, {"trace_ratio/mean": 0.25})
    tracker.close(True)
    failed = trackers.open_tracker(trackers.MlflowLogger(run_name="failed"), tmp_path, {})
    failed.close(False)  # a run that raised
    from mlflow.tracking import MlflowClient

    client = MlflowClient((tmp_path / "mlruns").as_uri())
    runs = client.search_runs([client.get_experiment_by_name("madloop").experiment_id])
    assert {r.info.run_name: r.info.status for r in runs} == {tmp_path.name: "FINISHED", "failed": "FAILED"}
    (run,) = [r for r in runs if r.info.run_name == tmp_path.name]
    assert run.data.params == {"model.components": "8"}
    history = client.get_metric_history(run.info.run_id, "trace_ratio/mean")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (3, 0.25)]


def test_wandb_tracker_offline(tmp_path, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    tracker = trackers.open_tracker(trackers.WandbLogger(tags=["t"]), tmp_path, {"model": {"components": 8}})
    tracker.log(0, {"trace_ratio/mean": 0.8125})
    tracker.log(1, {"trace_ratio/mean": 0.40625})
    tracker.close(True)
    (store,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    data = Path(store).read_bytes()  # W&B's record log: the history rows hold each key and its JSON value
    assert b"trace_ratio/mean" in data and json.dumps(0.8125).encode() in data and b"0.40625" in data
    assert b"components" in data  # the config


@pytest.mark.parametrize(
    "option, module", [("tensorboard", "tensorboardX"), ("wandb", "wandb"), ("mlflow", "mlflow"), ("none", None)]
)
def test_a_missing_tracker_package_is_refused_by_name(option, module, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    if module is None:  # logger=none needs no package
        assert type(madloop.compose([f"logger={option}"]).logger) is trackers.NoLogger
        return
    with pytest.raises(C.ConfigError, match=f"logger={option}: needs the {module} package"):
        madloop.compose([f"logger={option}"])


def test_parquet_without_pyarrow_is_refused(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(C.ConfigError, match=r"output.format=parquet: needs pyarrow"):
        madloop.compose(["output.format=parquet"])


def test_trackers_and_output_format_do_not_recompile():
    base = [*GAUSS, "loop.generations=2"]
    assert (
        simulation(madloop.compose(base)).programs
        is simulation(madloop.compose([*base, "logger=tensorboard", "output.format=parquet"])).programs
    )


def test_a_shared_tensorboard_logdir_keeps_one_run_per_job(tmp_path):
    """Two sweeps' job 0 (folders S1/0 and S2/0) into one logdir: two runs, not one folder with both event files
    (named by the job's folder name alone, they merged: steps 0-3 twice, from two lams)."""
    from madloop import trackers

    node = trackers.TensorBoardLogger(logdir=str(tmp_path / "tb"))
    for sweep in ("S1", "S2"):
        out = tmp_path / "multirun" / sweep / "0"
        out.mkdir(parents=True)
        tracker = trackers.open_tracker(node, out, {"sweep": sweep})
        tracker.log(0, {"trace_ratio/mean": 1.0})
        tracker.close(True)
    runs = sorted(p.parent.relative_to(tmp_path / "tb") for p in (tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert [str(r) for r in runs] == ["multirun/S1/0", "multirun/S2/0"]
