"""The command line: every config composes, bad input exits 2 with one line, runs write the contracted files."""

import os
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import madloop
from madloop import config as C
from madloop import metrics as M
from madloop import report
from madloop.run import main

CONF = files("madloop.conf")
GROUPS = ("data", "model", "regime", "loop", "bias", "eval", "guidance", "curation", "correction", "logger")


def options(group: str) -> list[str]:
    return sorted(p.name[:-5] for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in GROUPS for o in options(g)] + [f"experiment={o}" for o in options("experiment")]
)
def test_every_config_composes_and_validates(override, tmp_path):
    # guidance=sims guides a diffusion sampler, so it composes with model=diffusion
    overrides = ["model=diffusion", override] if override == "guidance=sims" else [override]
    if override == "model=linear":  # the supervised family regresses a regression truth's label
        overrides = ["data=linear", override]
    if override == "data=mnist":  # read from a local folder: a small mnist.npz with regime.n_real training images
        x, y = np.zeros((256, 28, 28), np.uint8), np.arange(256) % 10
        np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:20], y_test=y[:20])
        overrides += [f"data.path={tmp_path}", "data.heldout_n=20"]
    if override == "data=cifar10":  # the binary batches: 5 x 52 training and 20 test records of zero pixels
        record = lambda n: (np.arange(n, dtype=np.uint8) % 10)[:, None].repeat(3073, 1)  # noqa: E731 label bytes
        for i in range(1, 6):
            (tmp_path / f"data_batch_{i}.bin").write_bytes(record(52).tobytes())
        (tmp_path / "test_batch.bin").write_bytes(record(20).tobytes())
        overrides += [f"data.path={tmp_path}", "data.heldout_n=20"]
    if override in ("data=zipf", "data=markov", "data=text"):  # token rows need a token model
        overrides = ["model=ngram", *overrides]
    if override in ("model=categorical", "model=ngram", "model=transformer"):
        overrides = ["data=markov", *overrides]
    if override == "data=text":  # read from a local file
        (tmp_path / "text.txt").write_text("the cat sat on the mat. " * 40, encoding="utf-8")
        overrides += [f"data.path={tmp_path / 'text.txt'}", "data.length=16"]
    cfg = madloop.compose(overrides)
    assert isinstance(cfg, C.Config)
    assert isinstance(cfg.data, C.DataConfig) and isinstance(cfg.regime, C.RegimeConfig)


BAD = [
    (["data=nope"], "data=nope: unknown option; allowed: cifar10, circles, digits, gaussian"),
    (
        ["model=nope"],
        "model=nope: unknown option; allowed: categorical, diffusion, edm, flow, flow_matching, gan, gaussian, gmm",
    ),
    (["regime=nope"], "regime=nope: unknown option"),
    (["data.nope=1"], "data.nope=1: unknown field; allowed: modes, radius, std"),
    (["loop.seeds=abc"], "loop.seeds=abc: must be of type integer"),
    (["loop.seeds=0"], "loop.seeds=0: must be an integer >= 1"),
    (["loop.seed=4294967296"], "loop.seed=4294967296: must be an integer < 2**32"),
    (["loop.generations=-3"], "loop.generations=-3: must be an integer >= 1"),
    (["regime.n_real=0"], "regime.n_real=0: must be an integer >= 1"),
    (["regime.n_synth=-1", "regime=fresh_data"], "regime.n_synth=-1: must be an integer >= 0"),
    (["regime.n_synth=0"], "regime.n_synth=0: must be an integer >= 1 with regime=fully_synthetic"),
    (["bias.lam=0"], "bias.lam=0.0: must be a finite number > 0"),
    (["bias.lam=-0.5"], "bias.lam=-0.5: must be a finite number > 0"),
    (["regime.pool=keep"], "regime.pool=keep: allowed: replace, accumulate, accumulate_subsample"),
    (["model.components=300"], "model.components=300: must be <= the smallest training set (256 samples)"),
    (["data=gaussian", "data.dim=3", "data.mean=[0,0]"], "data.mean=[0.0,0.0]: must have data.dim=3 entries"),
    (["data=gaussian", "data.cov=[[1,2],[2,1]]"], "data.cov=[[1,2],[2,1]]: must be symmetric positive definite"),
    (["eval.metrics=[w2]"], "eval.metrics=[w2]: 'w2' needs model=gaussian and data=gaussian"),
    (["eval.metrics=[fid]"], "eval.metrics=[fid]: unknown metric 'fid'"),
    (["eval.n=3"], "eval.n=3: must be an integer >= 6"),
    (["model=kde", "model.bandwidth=wide"], "model.bandwidth=wide: allowed: scott, silverman"),
    (["regime.subsample=10"], "regime.subsample=10: only applies to regime.pool=accumulate_subsample"),
    (["loop.warm_start=maybe"], "loop.warm_start=maybe: must be true or false"),
    (["-m", "loop.seeds=2,0"], "loop.seeds=0: must be an integer >= 1"),
    (["data=mnist"], "data.path=null: required: a local folder with the MNIST files (expected train-images-idx3"),
    (["data=mnist", "data.path=/no/such/dir"], "data.path=/no/such/dir: no MNIST files there (expected train-"),
    (["data=mnist", "data.size=29"], "data.size=29: must be an integer in [1, 28]"),
    (["regime.n_initial=0"], "regime.n_initial=0: must be an integer >= 1 (null = regime.n_real)"),
    (["model=gaussian", "regime.n_initial=1"], "regime.n_initial=1: must be >= 2 to fit a covariance"),
    (["curation=k_choice", "regime=fresh_data", "regime.n_synth=0"], "curation=k_choice: needs regime.n_synth >= 1"),
    (["curation=k_choice", "curation.temperature=1e-40"], "curation.temperature=1e-40: must be >= 1e-30"),
    (["regime.n_initial=50", "sweep.regime.n_real=[16,32]"], "sweep.regime.n_real=[16,32]: has no effect with"),
    (["curation=best"], "curation=best: unknown option; allowed: k_choice, none"),
    (["curation=k_choice", "curation.k=0"], "curation.k=0: must be an integer >= 1"),
    (["curation=k_choice", "curation.temperature=0"], "curation.temperature=0.0: must be a finite number > 0"),
    (["curation=k_choice", "curation.reward=likes"], "curation.reward=likes: allowed: mode, point, class"),
    (["curation=k_choice", "curation.mode=8"], "curation.mode=8: must be an integer in [0, 7]"),
    (["curation=k_choice", "data=moons"], "curation.reward=mode: needs a mixture truth with >= 2 modes"),
    (["curation=k_choice", "curation.reward=point"], "curation.target=null: must be 2 finite numbers"),
    (["curation=k_choice", "curation.reward=class"], "curation.reward=class: needs an image source"),
    (["sweep.curation.temperature=[1.0]"], "sweep.curation.temperature=[1.0]: needs curation=k_choice"),
    (["eval.metrics=[reward]"], "eval.metrics=[reward]: 'reward' needs curation=k_choice"),
    (["data=zipf"], "model=gmm: a discrete source needs a token model"),
    (["data=zipf", "model=categorical", "eval.metrics=[mmd]"], "'mmd' needs continuous data"),
    (["eval.every=0"], "eval.every=0: must be an integer >= 1 (evaluate every generation: 1)"),
    (["output.format=xlsx"], "output.format=xlsx: allowed: csv, parquet"),
    (["logger=neptune"], "logger=neptune: unknown option; allowed: mlflow, none, tensorboard, wandb"),
    (["logger=wandb", "logger.mode=online_please"], "logger.mode=online_please: allowed: offline, online, disabled"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err


def cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "madloop.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ} if env is None else env,
    )


def test_bad_input_in_a_real_process_writes_nothing(tmp_path):
    proc = cli(["bias.lam=0"], tmp_path)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == "error: bias.lam=0.0: must be a finite number > 0 (1 = unbiased, < 1 colder, > 1 hotter)"
    )
    assert "Traceback" not in proc.stderr and list(tmp_path.iterdir()) == []


SMALL = ["loop.generations=3", "loop.chunk=3", "loop.seeds=3", "eval.n=128", "regime.n_real=64", "regime.n_synth=64"]


def test_run_writes_the_contracted_files_and_is_deterministic(tmp_path):
    # Run "a" has no JAX_COMPILATION_CACHE_DIR: a command-line run then caches its compiled programs under
    # $XDG_CACHE_HOME/madloop/jax (tested below); run "b" uses the session's cache folder.
    no_cache = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    no_cache.update(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    outs = []
    for name, env in (("a", no_cache), ("b", None)):
        proc = cli(SMALL + [f"hydra.run.dir={tmp_path / name}"], tmp_path, env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(tmp_path / name)
    assert any((tmp_path / "xdg" / "madloop" / "jax").iterdir())
    for f in ("metrics.csv", "metrics.png", "samples.png", "config.yaml", "floors.csv"):
        assert (outs[0] / f).stat().st_size > 0, f
    assert (outs[0] / "floors.csv").read_bytes() == (outs[1] / "floors.csv").read_bytes()
    assert "generation 3/3" in (outs[0] / "run.log").read_text()  # progress per generation
    # the same command twice gives byte-identical tables
    assert (outs[0] / "metrics.csv").read_bytes() == (outs[1] / "metrics.csv").read_bytes()
    table = pd.read_csv(outs[0] / "metrics.csv")
    assert list(table.columns[:2]) == ["seed", "generation"] and table.columns[-1] == "finite"
    assert len(table) == 3 * 4 and {"sw2", "mmd", "precision", "recall", "modes", "nll"} <= set(table.columns)
    # the Python API returns the same table from the same overrides
    api = madloop.run_table(SMALL)
    pd.testing.assert_frame_equal(api, table, check_dtype=False, rtol=1e-6)
    # floors.csv: one row per seed, the sample metrics only (in the table's order)
    floors = pd.read_csv(outs[0] / "floors.csv")
    sample_metrics = [c for c in table.columns if M.is_sample_metric(c)]
    assert list(floors.columns) == ["seed", *sample_metrics] and list(floors["seed"]) == [0, 1, 2]


def test_a_refused_rerun_leaves_the_folder_as_it_was(tmp_path):
    """A rerun into a finished folder with another config is refused by its checkpoint. It used to save its own
    config.yaml first (and Hydra rewrites .hydra/overrides.yaml at every start), so the report showed the old
    table under the new settings. The record (config.yaml, overrides.yaml) is written with the results; the
    report reads overrides.yaml; and the files are readable by others (0666 less the umask, not mkstemp's 0600)."""
    base = ["data=gaussian", "model=gaussian", "loop.seeds=2", "loop.generations=2", "eval.metrics=[trace_ratio]"]
    base += ["loop.checkpoint=true", "plots=false", "eval.floors=false", f"hydra.run.dir={tmp_path / 'run'}"]
    first = cli([*base, "bias.lam=0.8"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    out = tmp_path / "run"
    record = {f: (out / f).read_bytes() for f in ("config.yaml", "overrides.yaml", "metrics.csv")}
    assert "bias.lam=0.8" in record["overrides.yaml"].decode() and "lam: 0.8" in record["config.yaml"].decode()
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "metrics.csv").stat().st_mode & 0o777 == 0o666 & ~umask
    again = cli([*base, "bias.lam=0.5"], tmp_path)
    assert again.returncode == 2 and "different config" in again.stderr, again.stderr[-2000:]
    assert {f: (out / f).read_bytes() for f in record} == record
    assert "bias.lam=0.5" in (out / ".hydra" / "overrides.yaml").read_text()  # Hydra's copy: not what is read
    # the report takes the job's factor from its overrides.yaml: lam 0.8 here, where Hydra's copy says 0.5
    shutil.copytree(out, tmp_path / "jobs" / "0")
    shutil.copytree(out, tmp_path / "jobs" / "1")
    (tmp_path / "jobs" / "1" / "overrides.yaml").write_text(record["overrides.yaml"].decode().replace("0.8", "0.9"))
    table, factors = report.collect(tmp_path / "jobs")
    assert "bias.lam" in factors and table.groupby("job")["bias.lam"].first().to_dict() == {"0": 0.8, "1": 0.9}


def test_a_sweep_into_an_earlier_sweeps_folder(tmp_path):
    """Two sweeps into one folder (hydra.sweep.dir). A job the second refuses (a checkpoint of another config) says
    so in one line, not a traceback, and the command exits 2 after the other jobs ran. The report leaves out the job
    folders the current sweep did not write: here it used to aggregate all three jobs of the first sweep beside the
    two of the second, as if they were one experiment."""
    base = ["data=gaussian", "model=gaussian", "loop.seeds=2", "eval.metrics=[trace_ratio]", "plots=false"]
    base += ["eval.floors=false", f"hydra.sweep.dir={tmp_path / 's'}"]
    first = cli(["-m", *base, "loop.checkpoint=true", "loop.generations=1,2,3"], tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    refused = cli(["-m", *base, "loop.checkpoint=true", "bias.lam=0.5", "loop.generations=1,2"], tmp_path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    lines = [x for x in refused.stderr.splitlines() if x.startswith("error: ")]
    assert len(lines) == 1 and "holds a checkpoint of a different config" in lines[0], refused.stderr[-2000:]
    for job in ("0", "1"):  # both jobs ran, each logged its refusal
        assert "holds a checkpoint of a different config" in (tmp_path / "s" / job / "run.log").read_text()
    gone = subprocess.run(
        [sys.executable, "-m", "madloop.report", str(tmp_path / "s")], capture_output=True, text=True, timeout=120
    )
    assert gone.returncode == 2 and "3 job folder(s) of an earlier sweep left out" in gone.stderr, gone.stderr
    second = cli(["-m", *base, "bias.lam=0.5", "loop.generations=1,2"], tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    skipped: list[str] = []
    table, factors = report.collect(tmp_path / "s", skipped)
    assert skipped == ["2"] and sorted(table["job"].unique()) == ["0", "1"] and factors == ["loop.generations"]
    # a report on one job folder of the sweep is that job's, whatever sweep wrote it
    assert report.collect(tmp_path / "s" / "2")[0]["generation"].max() == 3
    # the same command again is the same sweep: every job stays in
    again = cli(["-m", *base, "bias.lam=0.5", "loop.generations=1,2"], tmp_path)
    assert again.returncode == 0 and report.sweep_identity(tmp_path / "s" / "multirun.yaml") is not None
    assert sorted(report.collect(tmp_path / "s")[0]["job"].unique()) == ["0", "1"]


def test_multirun_writes_one_table_per_job(tmp_path):
    proc = cli(
        [
            "-m",
            "loop.seeds=1,2",
            "loop.generations=1",
            "eval.n=64",
            "plots=false",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    tables = sorted((tmp_path / "sweep").glob("*/metrics.csv"))
    assert [len(pd.read_csv(t)) for t in tables] == [2, 4]
    # the report aggregates the jobs into one table with the varying override as a column
    from madloop import report

    report.main([str(tmp_path / "sweep")])
    combined = pd.read_csv(tmp_path / "sweep" / "report.csv")
    assert len(combined) == 6 and sorted(combined["loop.seeds"].unique()) == [1, 2]
    assert (tmp_path / "sweep" / "report_metrics.png").stat().st_size > 0


@pytest.mark.parametrize("launcher", ["joblib", pytest.param("submitit_local", marks=pytest.mark.slow)])
def test_parallel_launchers_run_every_job_and_the_report_aggregates_them(tmp_path, launcher):
    # Two jobs through a Hydra launcher plugin (local processes); each job's table equals the API's for the same
    # overrides, and the report combines both with the varying override as a column.
    small = ["loop.generations=1", "eval.n=64", "plots=false"]
    proc = cli(
        ["-m", f"hydra/launcher={launcher}", "loop.seeds=1,2", *small, f"hydra.sweep.dir={tmp_path / 's'}"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    tables = sorted((tmp_path / "s").glob("*/metrics.csv"))
    assert len(tables) == 2
    for path, seeds in zip(tables, (1, 2), strict=True):
        api = madloop.run_table([f"loop.seeds={seeds}", *small])
        pd.testing.assert_frame_equal(pd.read_csv(path), api, check_dtype=False, rtol=1e-5)
    from madloop import report

    report.main([str(tmp_path / "s")])
    combined = pd.read_csv(tmp_path / "s" / "report.csv")
    assert len(combined) == 2 + 4 and sorted(combined["loop.seeds"].unique()) == [1, 2]


def test_the_compilation_cache_switch_and_a_users_own_folder(monkeypatch):
    """MADLOOP_COMPILE_CACHE=0 turns the command line's persistent compilation cache off, and a folder set by the
    user wins (the default folder under $XDG_CACHE_HOME is tested with the contracted files above)."""
    import jax

    from madloop.run import use_compile_cache

    # In-process: the switch and the user's own folder (this session's cache folder, set by conftest).
    own = jax.config.jax_compilation_cache_dir
    assert own and use_compile_cache() == own
    monkeypatch.setenv("MADLOOP_COMPILE_CACHE", "0")
    assert use_compile_cache() is None and jax.config.jax_compilation_cache_dir == own
