"""A real SLURM multirun: a single-node cluster on this machine (tests/slurm/cluster.sh: Debian's slurm-wlm and
munge), a 4-job ``hydra/launcher=submitit_slurm`` sweep through it, and the report over the four jobs.

Slow tier. It needs root and the two packages (``bash tests/slurm/cluster.sh install``; .ci/run installs them);
without them it fails and says so. MADLOOP_NO_SLURM=1 skips it by name on a machine where neither is possible.
"""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import madloop
from madloop import report

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "slurm" / "cluster.sh"
RUN = ["data=gaussian", "model=gaussian", "loop.generations=3", "loop.seeds=2", "eval.n=64", "plots=false"]
RUN += ["regime.n_real=32", "regime.n_synth=32"]


@pytest.fixture
def cluster(tmp_path_factory):
    if os.environ.get("MADLOOP_NO_SLURM") == "1":
        pytest.skip("MADLOOP_NO_SLURM=1: the SLURM multirun is not run on this machine")
    missing = [exe for exe in ("munged", "slurmctld", "slurmd", "sbatch") if shutil.which(exe) is None]
    if missing or os.geteuid() != 0:
        pytest.fail(
            f"the SLURM test needs root and Debian's slurm-wlm and munge (missing: {', '.join(missing) or 'root'}); "
            f"run `bash {SCRIPT.relative_to(Path.cwd()) if SCRIPT.is_relative_to(Path.cwd()) else SCRIPT} install` "
            "as root, or set MADLOOP_NO_SLURM=1 to skip it"
        )
    # slurmd's spool and state must be on a path every daemon can reach: a short one under /tmp
    folder = Path(tmp_path_factory.mktemp("slurm"))
    try:
        started = subprocess.run(
            ["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr[-2000:]
        yield {**os.environ, "SLURM_CONF": str(folder / "slurm.conf"), "SUBMITIT_LOG_LEVEL": "ERROR"}
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, timeout=60)


def test_submitit_slurm_multirun_and_its_report(cluster, tmp_path):
    sweep = tmp_path / "sweep"
    argv = [sys.executable, "-m", "madloop.run", "-m", "hydra/launcher=submitit_slurm"]
    argv += ["hydra.launcher.partition=debug", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
    argv += ["hydra.launcher.timeout_min=20", f"hydra.sweep.dir={sweep}", *RUN]
    argv += ["bias.lam=0.8,1.0", "regime.pool=replace,accumulate"]
    proc = subprocess.run(argv, cwd=tmp_path, env=cluster, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    # four SLURM jobs ran (one job array: submitit's log per task, <array id>_<task>_log.out) and none is left
    logs = sorted(p.name for p in (sweep / ".submitit").rglob("*_log.out"))
    assert len(logs) == 4 and all(name.split("_")[0].isdigit() for name in logs), logs
    # (a task whose result submitit has already read may still be exiting: the queue empties within seconds)
    for _ in range(60):
        queue = subprocess.run(["squeue", "-h"], env=cluster, capture_output=True, text=True, timeout=30)
        assert queue.returncode == 0, queue.stderr
        if not queue.stdout.strip():
            break
        time.sleep(0.5)
    assert queue.stdout.strip() == "", queue.stdout
    # the report aggregates the four jobs, with the two overrides as factors
    report.main([str(sweep)])
    table = pd.read_csv(sweep / "report.csv")
    assert table["job"].nunique() == 4 and len(table) == 4 * 2 * 4
    assert set(zip(table["bias.lam"], table["regime.pool"], strict=True)) == {
        (lam, pool) for lam in (0.8, 1.0) for pool in ("replace", "accumulate")
    }
    # each job computed what the Python API computes for its overrides
    for (lam, pool), job in table.groupby(["bias.lam", "regime.pool"]):
        want = madloop.run_table([*RUN, f"bias.lam={lam}", f"regime.pool={pool}"])
        got = job.drop(columns=["job", "bias.lam", "regime.pool"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-6)
