"""Resumable runs: a run of every family killed with SIGKILL resumes from its last checkpoint with identical
results and final state; a failing job in a multirun does not cost the other jobs their results; a checkpoint of
another config is refused."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import TINY, TINY_DIFFUSION, TINY_EDM, TINY_FLOW, TINY_FLOW_MATCHING, TINY_GAN, TINY_SIMS

import madloop
from madloop import checkpoint, report
from madloop import config as C

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


def assert_resumes_bit_identical(run: list[str], folder: Path, killed_after: int, generations: int):
    """Resumes the killed run in ``folder`` with the same command and checks its metrics.csv and final state
    against an uninterrupted run of the same config, bit for bit; returns the uninterrupted run's Result."""
    assert not (folder / "metrics.csv").exists()
    resumed = madloop_run([*run, f"hydra.run.dir={folder}"], folder.parent)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from the checkpoint after generation {killed_after}" in resumed.stdout + resumed.stderr
    # the uninterrupted run (in this process: same XLA flags, same programs, chunk = 1 without a checkpoint)
    overrides = [o for o in run if not o.startswith("hydra")]
    whole = madloop.simulate(overrides)
    a, b = pd.read_csv(folder / "metrics.csv"), whole.table()
    assert len(a) == len(b) == whole.finite.shape[0] * (generations + 1) and list(a.columns) == list(b.columns)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())  # bit for bit, every run and generation
    # the resumed run's final state (its final checkpoint, which a finished run returns) is the uninterrupted one
    again = madloop.simulate(overrides, checkpoint=folder / "checkpoint")
    assert whole.resumed is None and again.resumed == generations
    np.testing.assert_array_equal(again.table().to_numpy(), b.to_numpy())
    got, want = jax.tree_util.tree_flatten_with_path(again.state), jax.tree_util.tree_flatten_with_path(whole.state)
    assert [path for path, _ in got[0]] == [path for path, _ in want[0]] and got[1] == want[1]
    for (path, x), (_, y) in zip(got[0], want[0], strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))
    return whole


def test_a_killed_run_resumes_with_identical_results(tmp_path):
    killed = tmp_path / "killed"
    proc = madloop_run([*RUN, f"hydra.run.dir={killed}"], tmp_path, wait=False)
    deadline = time.monotonic() + 240
    while max(saved_steps(killed / "checkpoint"), default=-1) < 3:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # at any moment: possibly while the next step is being written
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = saved_steps(killed / "checkpoint")
    assert left and 3 <= left[-1] < GENERATIONS, left  # killed mid-way
    assert_resumes_bit_identical(RUN, killed, left[-1], GENERATIONS)
    # another config is refused, not mixed in
    overrides = [o for o in RUN if not o.startswith("hydra")]
    with pytest.raises(C.ConfigError, match="holds a checkpoint of a different config"):
        madloop.simulate([*overrides, "loop.seeds=3"], checkpoint=killed / "checkpoint")


# A run that kills itself with SIGKILL right after saving the checkpoint of generation KILL_AFTER: as kill -9
# from outside (no cleanup, no atexit), at a known generation, so a fast family cannot finish first.
KILL_AFTER = 2
KILLED_RUN = f"""
import os, signal
from madloop import checkpoint
save = checkpoint.Checkpointer.save

def save_then_die(self, generation, tree):
    save(self, generation, tree)
    if generation == {KILL_AFTER}:
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.Checkpointer.save = save_then_die
from madloop.run import main
main()
"""
FAMILY_GENERATIONS = 5
# conftest's tiny sets and two runs (seeds, or a swept knob) per family, checkpointed every generation.
SMALL = [*TINY, f"loop.generations={FAMILY_GENERATIONS}", "loop.chunk=1", "loop.checkpoint=true"]
# Each family with a pool whose state grows or is carried (the state a resume must restore besides the params),
# and one or two metrics that read the model (each metric adds compile time; the final states are compared whole).
FAMILIES = {
    # EM warm-started from the previous generation; the accumulated pool kept as sufficient statistics
    "gmm": ["data=ring8", "model=gmm", "model.components=4", "model.init_iters=5", "model.iters=2"]
    + ["regime=synthetic_augmentation", "regime.pool=accumulate", "eval.metrics=[nll,sw2]"],
    # the parameters are the training rows; a subsample of the accumulated pool buffer
    "kde": ["data=moons", "model=kde", "regime=synthetic_augmentation", "regime.pool=accumulate_subsample"]
    + ["eval.metrics=[nll,sw2]"],
    # warm start: the next fit continues from the restored weights, AdamW moments and EMA
    "diffusion": [*TINY_DIFFUSION, "regime=fresh_data", "eval.metrics=[sw2]"],
    # the base and the auxiliary model, both restored
    "sims": [*TINY_DIFFUSION, *TINY_SIMS, "regime=fully_synthetic", "eval.metrics=[sw2]"],
    # EDM with SIMS: the base (weights, AdamW moments, EMA) and the auxiliary model, all restored
    "edm_sims": [*TINY_EDM, *TINY_SIMS, "regime=fresh_data", "eval.metrics=[sw2]"],
    # flow matching with SIMS: the warm-started base (weights, AdamW moments, EMA) and its auxiliary model
    "flow_matching": [*TINY_FLOW_MATCHING, *TINY_SIMS, "regime=synthetic_augmentation", "eval.metrics=[sw2]"],
    # warm start: the flow's weights, AdamW moments and EMA; an accumulated pool buffer
    "flow": [*TINY_FLOW, "regime=synthetic_augmentation", "regime.pool=accumulate", "eval.metrics=[nll,sw2]"],
    # warm start: the next fit continues the generator, the critic, both Adam states and the EMA
    "gan": [*TINY_GAN, "regime=synthetic_augmentation", "eval.metrics=[sw2]"],
    "curation": ["data=ring8", "model=gmm", "model.components=4", "model.init_iters=5", "model.iters=2"]
    + ["curation=k_choice", "curation.k=3", "sweep.curation.temperature=[0.1,1.0]", "regime=fully_synthetic"]
    + ["eval.metrics=[sw2,reward]"],
    # the loop operators: a verifier and a correction, both swept, on the supervised family with a subsampled pool
    "operators": ["data=linear", "data.dim=3", "model=linear", "curation=verifier", "sweep.curation.noise=[0.0,1.0]"]
    + ["correction=toward_truth", "sweep.correction.gamma=[0.0,0.5]", "regime=synthetic_augmentation"]
    + ["regime.pool=accumulate_subsample", "eval.metrics=[test_error,kept_share,unfilled]"],
    # token models: the accumulated pool kept as n-gram counts, and a subsample of an accumulated token buffer
    "ngram": ["data=markov", "data.vocab=6", "data.length=8", "model=ngram", "model.smoothing=0.1"]
    + ["regime=fresh_data", "regime.pool=accumulate", "eval.metrics=[kl_forward,distinct_1]"],
    "categorical": ["data=zipf", "data.vocab=40", "model=categorical", "regime=synthetic_augmentation"]
    + ["regime.pool=accumulate_subsample", "sweep.model.top_k=[0,10]", "eval.metrics=[kl_reverse,distinct_1]"],
    # warm start: the next fit continues from the restored weights and AdamW moments
    "transformer": ["data=markov", "data.vocab=6", "data.length=8", "model=transformer", "model.width=16"]
    + ["model.depth=1", "model.heads=2", "model.train_steps=10", "model.finetune_steps=4", "model.batch=8"]
    + ["regime=fresh_data", "eval.metrics=[kl_rate]"],
}


def fresh_adam(opt):
    """An optimiser state whose moments and step count restart at 0 (the injected learning rate kept)."""

    def reset(path, a):
        return a if "hyperparams" in jax.tree_util.keystr(path) else np.zeros_like(a)

    return jax.tree_util.tree_map_with_path(reset, opt)


def fresh_optimiser(state):
    """A checkpoint that does not save the optimiser: AdamW's moments and step count restart at 0 (lr kept)."""
    return state._replace(params=state.params._replace(opt=fresh_adam(state.params.opt)))


# The power check: a checkpoint that loses what each family carries besides the obvious parameters makes the
# resumed run differ (each lambda maps the restored LoopState to what such a checkpoint would give back).
# A SIMS-guided neural family's state: the base's optimiser and EMA, and the auxiliary model.
SIMS_FORGETS = [
    lambda s: s._replace(params=s.params._replace(base=fresh_optimiser(s._replace(params=s.params.base)).params)),
    lambda s: s._replace(params=s.params._replace(base=s.params.base._replace(ema=s.params.base.net))),  # EMA
    lambda s: s._replace(params=s.params._replace(aux=s.params.base)),  # the auxiliary model
]
FORGETFUL = {
    "gmm": [lambda s: s._replace(pool=jax.tree.map(np.zeros_like, s.pool))],  # the pool's statistics
    "kde": [lambda s: s._replace(pool_w=np.zeros_like(s.pool_w))],  # the accumulated pool
    "diffusion": [fresh_optimiser, lambda s: s._replace(params=s.params._replace(ema=s.params.net))],  # EMA
    "sims": [lambda s: s._replace(params=s.params._replace(aux=s.params.base))],  # the auxiliary model
    "edm_sims": SIMS_FORGETS,
    "flow_matching": SIMS_FORGETS,
    "flow": [fresh_optimiser, lambda s: s._replace(params=s.params._replace(ema=s.params.net))],  # EMA
    # the critic (a GAN's warm start keeps it: a checkpoint of the generator alone is not the run) and its Adam
    # state alone (moments and step count zeroed, the learning rate kept)
    "gan": [
        lambda s: s._replace(params=s.params._replace(critic=jax.tree.map(np.zeros_like, s.params.critic))),
        lambda s: s._replace(params=s.params._replace(critic_opt=fresh_adam(s.params.critic_opt))),
    ],
    # (curation keeps no state of its own) a checkpoint that gives the runs back in another order: runs of the
    # swept temperature and of the seeds swapped
    "curation": [lambda s: jax.tree.map(lambda a: a[::-1], s)],
    # a checkpoint that loses the accumulated pool, and one that swaps the swept runs
    "operators": [lambda s: s._replace(pool_w=np.zeros_like(s.pool_w)), lambda s: jax.tree.map(lambda a: a[::-1], s)],
    "ngram": [lambda s: s._replace(pool=jax.tree.map(np.zeros_like, s.pool))],  # the pool's counts
    "categorical": [lambda s: s._replace(pool_w=np.zeros_like(s.pool_w))],  # the accumulated tokens
    "transformer": [fresh_optimiser],  # AdamW's moments
}
# The neural families: 50-60 s of CPU each (two CLI processes and this one compile the network); the operators'
# case compiles three loops with a verifier and a correction; categorical: its token path is ngram's (default tier)
# and its pool kde's; transformer: minutes of compilation on a loaded CPU.
SLOW = {"diffusion", "sims", "edm_sims", "flow_matching", "flow", "gan", "operators", "categorical", "transformer"}
# and, for the default tier's time budget, the families whose state is a pool or a reordering (gmm stays: a pool
# kept as statistics)
SLOW |= {"kde", "ngram", "curation"}


@pytest.mark.parametrize("family", [pytest.param(f, marks=[pytest.mark.slow] * (f in SLOW)) for f in FAMILIES])
def test_every_family_resumes_with_identical_results(family, tmp_path, monkeypatch):
    run = [*SMALL, *FAMILIES[family]]
    killed = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, *run, f"hydra.run.dir={killed}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert saved_steps(killed / "checkpoint") == [KILL_AFTER]  # killed mid-way
    shutil.copytree(killed / "checkpoint", tmp_path / "at_kill")
    whole = assert_resumes_bit_identical(run, killed, KILL_AFTER, FAMILY_GENERATIONS)

    overrides = [o for o in run if not o.startswith("hydra")]
    restore = checkpoint.Checkpointer.restore
    for i, forget in enumerate(FORGETFUL[family]):

        def forgetful_restore(self, abstract, forget=forget):
            (state, rows), generation = restore(self, abstract)
            return (forget(state), rows), generation

        monkeypatch.setattr(checkpoint.Checkpointer, "restore", forgetful_restore)
        shutil.copytree(tmp_path / "at_kill", tmp_path / f"forgetful{i}")
        broken = madloop.simulate(overrides, checkpoint=tmp_path / f"forgetful{i}")
        assert broken.resumed == KILL_AFTER
        table, want = broken.table(), whole.table()
        before = (want["generation"] <= KILL_AFTER).to_numpy()  # rows restored from the checkpoint: the same
        np.testing.assert_array_equal(table.to_numpy()[before], want.to_numpy()[before])
        after = table.to_numpy()[~before], want.to_numpy()[~before]
        assert not np.array_equal(*after, equal_nan=True), f"forgetful checkpoint {i} of {family} went unnoticed"


FAIL_ONE_JOB = """
import sys
from madloop import engine
run = engine.Simulation.__call__

def fail_for_lam_08(self, *args, **kwargs):
    if self.cfg.bias.lam == 0.8:
        raise FloatingPointError("injected failure")
    return run(self, *args, **kwargs)

engine.Simulation.__call__ = fail_for_lam_08
from madloop.run import main
main(sys.argv[1:])
"""


@pytest.mark.slow  # three jobs in a process each (the default tier's time budget)
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
