"""Resumable runs: a run killed with SIGKILL resumes from its last checkpoint with identical results; a failing
job in a multirun does not cost the other jobs their results; a checkpoint of another config is refused."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import madloop
from madloop import config as C
from madloop import report

GENERATIONS = 40
RUN = [
    "data=gaussian",
    "model=gaussian",
    "regime=fully_synthetic",
    "eval.metrics=[trace_ratio,w2,sw2]",
    "eval.n=64",
    "loop.seeds=4",
    f"loop.generations={GENERATIONS}",
    "loop.chunk=1",
    "loop.checkpoint=true",
    "sweep.bias.lam=[0.8,1.0]",
    "plots=false",
]


def madloop_run(args: list[str], cwd: Path, wait: bool = True):
    cmd = [sys.executable, "-m", "madloop.run", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def saved_steps(folder: Path) -> list[int]:
    """Completed checkpoint steps (Orbax renames a step's temporary folder to its number when it is complete)."""
    return sorted(int(p.name) for p in folder.glob("*") if p.name.isdigit()) if folder.exists() else []


def test_a_killed_run_resumes_with_identical_results(tmp_path):
    killed = tmp_path / "killed"
    proc = madloop_run([*RUN, f"hydra.run.dir={killed}"], tmp_path, wait=False)
    deadline = time.monotonic() + 240
    while max(saved_steps(killed / "checkpoint"), default=-1) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = saved_steps(killed / "checkpoint")
    assert left and 3 <= left[-1] < GENERATIONS, left  # killed mid-way
    assert not (killed / "metrics.csv").exists()

    resumed = madloop_run([*RUN, f"hydra.run.dir={killed}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from the checkpoint after generation {left[-1]}" in resumed.stdout + resumed.stderr
    # the uninterrupted run (in this process: same XLA flags, same programs)
    overrides = [o for o in RUN if not o.startswith("hydra")]
    whole = madloop.simulate(overrides, checkpoint=tmp_path / "whole")
    a, b = pd.read_csv(killed / "metrics.csv"), whole.table()
    assert len(a) == 2 * 4 * (GENERATIONS + 1) and list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())  # bit for bit, every seed and generation

    # a finished run returns from its final checkpoint; another config is refused, not mixed in
    again = madloop.simulate(overrides, checkpoint=tmp_path / "whole")
    assert whole.resumed is None and again.resumed == GENERATIONS
    np.testing.assert_array_equal(again.table().to_numpy(), b.to_numpy())
    with pytest.raises(C.ConfigError, match="holds a checkpoint of a different config"):
        madloop.simulate([*overrides, "loop.seeds=3"], checkpoint=tmp_path / "whole")


FAIL_ONE_JOB = """
import sys
from madloop import loop
run = loop.Simulation.__call__

def fail_for_lam_08(self, *args, **kwargs):
    if self.cfg.bias.lam == 0.8:
        raise FloatingPointError("injected failure")
    return run(self, *args, **kwargs)

loop.Simulation.__call__ = fail_for_lam_08
from madloop.run import main
main(sys.argv[1:])
"""


def test_a_failing_job_does_not_cost_the_other_jobs_their_results(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "data=gaussian", "model=gaussian", "loop.generations=2", "loop.seeds=2", "plots=false"]
    args += ["bias.lam=0.5,0.8,1.0", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(
        [sys.executable, "-c", FAIL_ONE_JOB, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0 and "injected failure" in proc.stderr
    # jobs 0 and 2 (before and after the failing one) wrote complete tables; job 1 wrote none but logged why
    for job in ("0", "2"):
        assert len(pd.read_csv(sweep / job / "metrics.csv")) == 2 * 3
    assert not (sweep / "1" / "metrics.csv").exists()
    (log,) = (sweep / "1").glob("*.log")
    assert "job failed" in log.read_text() and "injected failure" in log.read_text()
    table, factors = report.collect(sweep)
    assert factors == ["bias.lam"] and sorted(table["bias.lam"].unique()) == [0.5, 1.0]
