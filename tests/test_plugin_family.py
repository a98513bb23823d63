"""A model family defined entirely in this file, registered as a plug-in, run through ``python -m madloop.run``.

Nothing under madloop/ knows it: the subprocess loads it with ``MADLOOP_PLUGINS=tests.test_plugin_family`` and
composes ``model=isotropic`` from the schema registered here (no YAML file). docs/adding_a_model_family.md walks
through this file.

The family is the isotropic Gaussian N(mean, var I) fitted by maximum likelihood. In the fully synthetic loop
with n samples per generation from N(0, I_d), d var_g is the mean squared distance of n draws of N(mean, var_{g-1}
I) to their mean, so E[d var_g | var_{g-1}] = d var_{g-1} (n - 1) / n and E[trace_ratio_g] = ((n - 1) / n)^(g + 1)
(generation 0 is already fitted on n samples).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from madloop import config as C
from madloop.types import Data, GenerativeModel, Key, Knobs, Moments, Weights

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------ the plug-in


@dataclass(frozen=True)
class IsotropicModel(C.ModelConfig):
    """N(mean, var I) by maximum likelihood; ``floor`` is added to the variance."""

    floor: float = 0.0


class IsotropicParams(NamedTuple):
    """Attributes: mean [d]; var: the common variance (a scalar)."""

    mean: jax.Array
    var: jax.Array


def isotropic_family(cfg: IsotropicModel, source=None, scan=None) -> GenerativeModel:
    """The family's pure functions: closed-form weighted fit, sampling with variance lam * var, exact moments."""
    del source, scan  # neither an image network nor a training scan

    def init(key: Key, x: Data, w: Weights) -> IsotropicParams:
        del key, w
        return IsotropicParams(jnp.zeros(x.shape[1:], x.dtype), jnp.ones((), x.dtype))

    def fit(key: Key, params: IsotropicParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> IsotropicParams:
        del key, params, warm, knobs
        mean = (w @ x) / jnp.sum(w)
        var = (w @ jnp.sum((x - mean) ** 2, axis=1)) / (jnp.sum(w) * x.shape[1])
        return IsotropicParams(mean, var + cfg.floor)

    def sample(key: Key, params: IsotropicParams, n: int, knobs: Knobs) -> Data:
        z = jax.random.normal(key, (n, params.mean.shape[0]), params.mean.dtype)
        return params.mean + jnp.sqrt(knobs["lam"] * params.var) * z

    def moments(params: IsotropicParams) -> tuple[jax.Array, jax.Array]:
        d = params.mean.shape[0]
        return params.mean, params.var * jnp.eye(d, dtype=params.mean.dtype)

    return GenerativeModel(init, fit, sample, moments=Moments(moments))


def check(m: IsotropicModel) -> None:
    """Its own field: a finite floor >= 0."""
    C.non_negative("model.floor", m.floor)


# The registration line. It runs when madloop loads this file as a plug-in (MADLOOP_PLUGINS names it), not when
# pytest imports it to collect the tests below: other tests in the same worker compare the lists of options.
if __name__ in os.environ.get("MADLOOP_PLUGINS", "").split(","):
    C.register("model", "isotropic", IsotropicModel, build=isotropic_family, check=check)


# ----------------------------------------------------------------------------------------------------- tests

N, GENERATIONS, SEEDS = 16, 10, 2000


def run_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MADLOOP_PLUGINS": "tests.test_plugin_family", "MADLOOP_COMPILE_CACHE": "0"}
    cmd = [sys.executable, "-m", "madloop.run", *overrides, f"hydra.run.dir={tmp_path}", "plots=false"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_plugin_family_runs_through_the_cli_and_follows_its_law(tmp_path):
    out = run_cli(
        tmp_path,
        "model=isotropic",
        "data=gaussian",
        "data.dim=2",
        f"regime.n_real={N}",
        f"regime.n_synth={N}",
        f"loop.generations={GENERATIONS}",
        f"loop.seeds={SEEDS}",
        "eval.metrics=[trace_ratio,mean_sqerr]",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert len(table) == SEEDS * (GENERATIONS + 1)
    last = table[table.generation == GENERATIONS].trace_ratio.to_numpy()
    law = ((N - 1) / N) ** (GENERATIONS + 1)
    se = last.std(ddof=1) / np.sqrt(SEEDS)
    assert abs(last.mean() - law) < 4.5 * se, (last.mean(), law, se)
    # Power: the law of an unbiased variance (no shrinkage, E = 1) is rejected.
    assert abs(last.mean() - 1.0) > 4.5 * se


def test_plugin_family_field_check_and_help(tmp_path):
    bad = run_cli(tmp_path, "model=isotropic", "model.floor=-1")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == "error: model.floor=-1.0: must be a finite number >= 0"
    env = {**os.environ, "MADLOOP_PLUGINS": "tests.test_plugin_family"}
    shown = subprocess.run(
        [sys.executable, "-m", "madloop.run", "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0
    models = next(line for line in shown.stdout.splitlines() if line.strip().startswith("model="))
    assert "isotropic" in models and "gaussian" in models
    assert "schema" not in shown.stdout  # the store's internal groups are not what a user composes


def test_plugin_that_cannot_be_imported_is_one_line(tmp_path):
    env = {**os.environ, "MADLOOP_PLUGINS": "tests.no_such_plugin"}
    out = subprocess.run(
        [sys.executable, "-m", "madloop.run", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: MADLOOP_PLUGINS=tests.no_such_plugin: cannot import this plug-in module: No module named "
        "'tests.no_such_plugin'"
    ]
