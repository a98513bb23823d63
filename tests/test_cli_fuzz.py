"""The command line under random and adversarial overrides: exit 0, or exit 2 with one line and no traceback.

Most examples drive ``madloop.run.main`` in-process, exactly as ``python -m madloop.run`` does (the same argv
through the pre-validation and then Hydra's own parser, launcher and ``task``), with one change: the simulation
is replaced by a stub that builds the loop's parts (source, model, guidance, curation) and stops, so a config
that passes every check counts as exit 0 without running for minutes. A handful of real subprocesses check that
the in-process harness and ``python -m madloop.run`` agree.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import subprocess
import sys
import warnings
from importlib.resources import files
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import madloop.engine
from madloop import api, run
from madloop import config as C
from madloop.loop import make_loop
from madloop.parts import parts_of

CONF = files("madloop.conf")
GROUPS = ("data", "model", "regime", "loop", "bias", "eval", "guidance", "curation", "correction", "experiment")


def options(group: str) -> list[str]:
    return sorted(p.name[:-5] for p in CONF.joinpath(group).iterdir() if p.name.endswith(".yaml"))


def schema_keys() -> list[str]:
    """Every dotted key of the schemas: a group's keys from all of its options (valid or not for the chosen one)."""
    api.register()  # the options' schemas and the sweep node built from the knob table
    keys: set[str] = set()

    def walk(prefix: str, cls: type) -> None:
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default):
                walk(f"{prefix}{f.name}.", type(default))
            elif f.name not in C.OPTIONS and f.name not in C.NODES:
                keys.add(prefix + f.name)

    walk("", C.Config)
    for path, cls in C.NODES.items():
        walk(f"{path}.", cls)
    for group in C.OPTIONS:
        for cls in C.schemas(group).values():
            walk(f"{group}.", cls)
    return sorted(keys)


KEYS = schema_keys()
UNKNOWN_KEYS = ["nope", "data.nope", "loop.seedz", "model.nope.deeper", "sweep.bias.nope", "eval.metrics.n"]
NUMBERS = [
    "0", "-1", "1", "2", "3", "7", "64", "-0.0", "0.5", "1.5", "1e-40", "1e308", "1e309", "nan", "inf", "-inf",
    "2147483647", "2147483648", "4294967296", "9223372036854775808", "1000000000000", "-1000000000000000000000",
    "0x10", "1_000", "+5", ".5", "5.", "1e3",
]  # fmt: skip
SPECIALS = [
    "", "null", "true", "false", "'quoted'", '"dq"', "'a b'", "a b", "[]", "[[]]", "[[1,2],[3,4]]", "{}", "{a:1}",
    "[1,[2]]", "[null]", "[true]", "[nan,inf]", "${loop.seeds}", "${nope}", "${oc.env:HOME}", "${oc.env:NOPE_XYZ}",
    "${oc.decode:'[1,2]'}", "1,2", "range(1,4)", "choice(1,2)", "interval(0,1)", "glob(*)", "tag(a,1)", "\\",
    "'", "[1,", "{a:", "}", "ü", "scott", "mle", "kmeans++", "unet", "mlp", "cfg", "modes", "point", "class",
    "accumulate", "accumulate_subsample", "[trace_ratio]", "[w2,kl]", "[fd,modes,reward,class_3,nll]",
]  # fmt: skip
MALFORMED = [
    "nokey", "=1", "a==1", "loop.seeds==3", "loop.seeds:3", "data.dim=1=2", "++loop.seeds=2", "+loop.new=1",
    "~loop", "~loop.seeds", "~data", "+data=gaussian", "data..dim=3", ".x=1", "DATA=gaussian", "loop.=1",
    "loop.seeds=", "-x", "--nope", "--cfg=job", "-c", "model/=gmm", "data/x=1", "hydra.nope=1", "hydra/launcher=nope",
    "hydra.verbose=maybe", "hydra.run.dir=", "loop seeds=1", " ", "",
]  # fmt: skip


def group_choice() -> st.SearchStrategy[str]:
    real = st.sampled_from([f"{g}={o}" for g in GROUPS for o in options(g)])
    unknown = st.sampled_from(GROUPS).map(lambda g: f"{g}=nope")
    return st.one_of(real, real, unknown)


def value() -> st.SearchStrategy[str]:
    number = st.one_of(st.sampled_from(NUMBERS), st.integers(-(10**6), 10**6).map(str))
    scalar = st.one_of(number, st.sampled_from(SPECIALS), st.text("abXY_-./:*", max_size=5))
    listed = st.lists(st.one_of(number, st.sampled_from(["null", "a", "''", "[]"])), max_size=3)
    return st.one_of(scalar, scalar, listed.map(lambda v: "[" + ",".join(v) + "]"))


def override() -> st.SearchStrategy[str]:
    key = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(UNKNOWN_KEYS))
    assignment = st.tuples(st.sampled_from(["", "", "", "+", "++"]), key, value()).map(lambda t: f"{t[0]}{t[1]}={t[2]}")
    return st.one_of(assignment, assignment, assignment, group_choice(), st.sampled_from(MALFORMED))


def command_line() -> st.SearchStrategy[list[str]]:
    return st.tuples(st.sampled_from([[], [], [], ["-m"]]), st.lists(override(), min_size=1, max_size=4)).map(
        lambda t: t[0] + t[1]
    )


class Validated(BaseException):  # noqa: N818 (not an error: the signal that every check passed)
    """Raised in place of the simulation: the config passed every check and the loop's parts were built.

    A BaseException, so that it passes ``task``'s and Hydra's ``except Exception`` handlers as a Ctrl-C would.
    """


def built_loop(cfg: C.Config):
    """The stub of ``madloop.engine.simulation``: builds every part of the loop (no compilation), then stops."""
    make_loop(cfg, parts_of(cfg))
    raise Validated


# Python's default warning filters (a real process shows these on stderr; pytest would otherwise record them).
DEFAULT_FILTERS = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


def run_in_process(argv: list[str], folder: Path, through_hydra: bool = True) -> tuple[int, str]:
    """``python -m madloop.run *argv`` in this process: (exit code, stderr), with warnings shown as stderr lines.

    Exit code 0 when the config validated (the stubbed simulation was reached) or Hydra returned normally.
    ``through_hydra=False`` stops after ``main``'s pre-validation (the one composition per job that every
    refusal comes from) and builds the loop's parts for each job's config, skipping Hydra's second composition
    and launcher (about 3x faster; ``test_through_hydra...`` covers that part).
    """
    from hydra.core.global_hydra import GlobalHydra

    err, out = io.StringIO(), io.StringIO()
    saved = (sys.argv, os.getcwd(), madloop.engine.simulation, api.compose, run.hydra.main)
    composed: list[C.Config] = []

    def compose(overrides=()):
        composed.append(saved[3](overrides))
        return composed[-1]

    def hydra_main(**kwargs):
        def decorate(task):
            def launch():
                for cfg in composed:
                    built_loop(cfg)

            return launch

        return decorate

    sys.argv = ["madloop.run", *argv]
    os.chdir(folder)
    madloop.engine.simulation = built_loop
    if not through_hydra:
        api.compose, run.hydra.main = compose, hydra_main
    GlobalHydra.instance().clear()
    code = 0
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
            with contextlib.redirect_stdout(out):
                warnings.resetwarnings()
                warnings.simplefilter("default")
                for category in DEFAULT_FILTERS:
                    warnings.simplefilter("ignore", category)
                try:
                    run.main(argv)
                except Validated:
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                except Exception:  # what a real process would print as a traceback and exit 1 for
                    import traceback

                    traceback.print_exc(file=err)
                    code = 1
    finally:
        sys.argv, cwd, madloop.engine.simulation, api.compose, run.hydra.main = saved
        os.chdir(cwd)
        GlobalHydra.instance().clear()
    warned = "".join(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n" for w in caught)
    return code, warned + err.getvalue()


def assert_clean_exit(argv: list[str], code: int, stderr: str) -> None:
    """Exit 0, or exit 2 with exactly one line on stderr ('error: ...') and no traceback."""
    shown = f"argv={argv!r} exit={code} stderr:\n{stderr[-3000:]}"
    assert code in (0, 2), shown
    if code == 2:
        assert stderr.startswith("error: ") and stderr.count("\n") == 1 and stderr.endswith("\n"), shown
        assert "Traceback" not in stderr, shown


FUZZ = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# MADLOOP_FUZZ_EXAMPLES=n scales the fuzz tests (n examples before Hydra, n / 4 through it, 3 n in the slow tier:
# 600 there took 9 CPU-minutes, the largest share of CI's time budget for one test).
EXAMPLES = int(os.environ.get("MADLOOP_FUZZ_EXAMPLES", "60"))


@settings(max_examples=EXAMPLES, **FUZZ)
@given(argv=command_line())
def test_random_overrides_exit_0_or_2_with_one_line(argv, tmp_path_factory):
    code, stderr = run_in_process(argv, tmp_path_factory.mktemp("fuzz"), through_hydra=False)
    assert_clean_exit(argv, code, stderr)


@settings(max_examples=max(1, EXAMPLES // 4), **FUZZ)
@given(argv=command_line())
def test_through_hydra_random_overrides_exit_0_or_2_with_one_line(argv, tmp_path_factory):
    code, stderr = run_in_process(argv, tmp_path_factory.mktemp("fuzz"), through_hydra=True)
    assert_clean_exit(argv, code, stderr)


@pytest.mark.slow
@settings(max_examples=3 * EXAMPLES, **FUZZ)
@given(argv=command_line())
def test_many_random_overrides_exit_0_or_2_with_one_line(argv, tmp_path_factory):
    code, stderr = run_in_process(argv, tmp_path_factory.mktemp("fuzz"), through_hydra=False)
    assert_clean_exit(argv, code, stderr)


# Hand-picked adversarial lines, each once (the generator reaches them only by chance).
ADVERSARIAL = [
    ["data=gaussian", "data.dim=100000"],
    ["loop.seeds=1000000000000"],
    ["loop.generations=2147483648"],
    ["regime.n_real=2147483648", "loop.seeds=1"],
    ["regime.n_synth=2147483648", "loop.seeds=1", "regime=fresh_data"],
    ["eval.n=2147483648"],
    ["eval.projections=1000000000000"],
    ["bias.lam=nan"],
    ["bias.lam=inf"],
    ["bias.lam=1e309"],
    ["bias.lam=[1,2]"],
    ["loop.seeds=[1,2]"],
    ["loop.seeds=1.5"],
    ["loop.seeds=true"],
    ["loop.seeds="],
    ["data.dim=2", "data=gaussian", "data.mean=[nan,0]"],
    ["data=gaussian", "data.cov=[[nan,0],[0,1]]"],
    ["data=gaussian", "data.cov=[[1,0],[0,inf]]"],
    ["data=gaussian", "data.scale=inf"],
    ["data=ring8", "data.std=nan"],
    ["data=moons", "data.noise=nan"],
    ["data=circles", "data.factor=nan"],
    ["data=mixture", "data.components=1000000000"],
    ["data=digits", "data.heldout=nan"],
    ["model.reg_covar=nan"],
    ["model=kde", "model.bandwidth=nan"],
    ["model=kde", "model.bandwidth=[1]"],
    ["model=diffusion", "model.lr=nan"],
    ["model=diffusion", "model.ema=nan"],
    ["model=diffusion", "model.label_dropout=nan"],
    ["model=diffusion", "model.channels=[]"],
    ["model=diffusion", "model.width=1000000000"],
    ["model=flow_matching", "model.sigma_min=nan"],
    ["model=flow_matching", "model.ot_epsilon=inf"],
    ["model=flow_matching", "model.coupling=ot", "model.ot_iters=0"],
    ["guidance=sims", "model=flow_matching", "guidance.omega=nan"],
    ["eval.mode_share=nan"],
    ["eval.metrics=[]"],
    ["eval.metrics=[[1]]"],
    ["regime.real_weight=nan"],
    ["sweep.bias.lam=[]"],
    ["sweep.bias.lam=[nan]"],
    ["sweep.regime.n_synth=[1,2147483648]"],
    ["curation=k_choice", "curation.temperature=nan"],
    ["curation=k_choice", "curation.k=1000000000000"],
    ["guidance=sims", "model=diffusion", "guidance.omega=nan"],
    ["guidance=sims", "model=diffusion", "guidance.n_aux=1000000000000"],
    ["guidance=sims", "model=diffusion", "guidance.target=[1,2]", "guidance.control=modes"],
    ["+nope=1"],
    ["~loop"],
    ["--nope"],
    ["-m", "loop.seeds=1,0"],
    ["-m", "data=gaussian,nope"],
    ["hydra.nope=1"],
    ["hydra/launcher=nope"],
    ["experiment=nope"],
    ["experiment=gaussian_long", "loop.seeds=1000000000"],
]


# The lines that found bugs (regressions) run in the default tier; the others in the slow tier (-m slow).
FOUND = (
    ["data=gaussian", "data.dim=100000"],
    ["regime.n_real=2147483648", "loop.seeds=1"],
    ["eval.metrics=[[1]]"],
    ["data=mixture", "data.components=1000000000"],
    ["--nope"],
    ["hydra.nope=1"],
    ["hydra/launcher=nope"],
)


@pytest.mark.parametrize(
    "argv", [a if a in FOUND else pytest.param(a, marks=pytest.mark.slow) for a in ADVERSARIAL], ids=" ".join
)
def test_adversarial_overrides_exit_0_or_2_with_one_line(argv, tmp_path):
    hydra_level = any(a.startswith("-") or a.lstrip("+~").startswith("hydra") for a in argv)
    code, stderr = run_in_process(argv, tmp_path, through_hydra=hydra_level)
    assert_clean_exit(argv, code, stderr)


@pytest.mark.slow  # real processes (the default tier's time budget)
def test_the_harness_sees_what_a_real_process_does(tmp_path, monkeypatch):
    """The in-process harness and ``python -m madloop.run`` agree on exit codes and stderr (a refused config, an
    unknown flag, an unknown Hydra key), and a tiny valid run exits 0 for real."""
    monkeypatch.setenv("MADLOOP_MEMORY_GIB", "64")  # the same memory for both (the free memory moves)
    for argv in (["data=gaussian", "data.dim=100000"], ["--nope"], ["hydra.nope=1"]):
        real = subprocess.run(
            [sys.executable, "-m", "madloop.run", *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert_clean_exit(argv, real.returncode, real.stderr)
        assert run_in_process(argv, tmp_path) == (real.returncode, real.stderr), argv
    tiny = ["loop.generations=1", "loop.seeds=1", "eval.n=32", "eval.snapshot_n=8", "plots=false"]
    real = subprocess.run(
        [sys.executable, "-m", "madloop.run", *tiny, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert real.returncode == 0, real.stderr[-2000:]
    assert (tmp_path / "run" / "metrics.csv").stat().st_size > 0
