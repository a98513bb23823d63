"""The memory check: a config whose buffers cannot fit is refused before any allocation, with one line; the
estimates are exact where hand-checkable, and every preset fits with a wide margin."""

import subprocess
import sys
from importlib.resources import files

import pytest

import madloop
from madloop import config as C
from madloop import memory
from madloop import metrics as M

GIB = memory.GIB


def estimate(overrides: list[str]) -> tuple[C.Config, dict[str, memory.Buffer]]:
    cfg = madloop.compose(overrides)  # the config that runs: a count sweep masks its named buffer
    return cfg, {buf.name: buf for buf in memory.buffers(cfg)}


def test_hand_checked_sizes():
    # 16 seeds x 8 components x 100 x 100 float32 = 5,120,000 bytes; the replace pool 16 x 256 x 100 x 4.
    _, bufs = estimate(["data=gaussian", "data.dim=100", "model=gmm"])
    assert bufs["the model covariances"].nbytes == 16 * 8 * 100 * 100 * 4 == 5_120_000
    assert bufs["the synthetic pool"].nbytes == 16 * 256 * 100 * 4
    assert bufs["the truth's covariance"].nbytes == 100 * 100 * (8 + 4)
    # accumulate over 20 generations: 20 x 256 slots per seed; a sweep of 3 lam values triples the runs.
    _, bufs = estimate(["regime.pool=accumulate", "sweep.bias.lam=[0.5,0.8,1.0]"])
    assert bufs["the accumulated pool"].nbytes == 3 * 16 * 20 * 256 * 2 * 4
    # a Gaussian accumulate pool kept as statistics holds no samples
    _, bufs = estimate(["data=gaussian", "model=gaussian", "regime.pool=accumulate"])
    assert "the accumulated pool" not in bufs
    # so do the other families with statistics (counts, normal equations); their rows: `length` tokens, [x, y]
    for family in (["data=markov", "model=ngram"], ["data=zipf", "model=categorical"], ["data=linear", "model=linear"]):
        _, bufs = estimate([*family, "regime.pool=accumulate"])
        assert "the accumulated pool" not in bufs, family
        _, bufs = estimate([*family, "regime.pool=accumulate", "loop.stats_pool=false"])
        assert "the accumulated pool" in bufs, family
    # the pairwise metrics: mmd / prdc / kid hold a block of rows per run (metrics.row_blocks), the MMD reference
    # the whole held-out matrix once; vendi (an eigendecomposition) and alpha_beta the whole matrix per run
    _, bufs = estimate([])
    assert bufs["the k-NN distance blocks"].nbytes == 16 * M.row_block(1000) * 1000 * 4
    assert bufs["the held-out distance matrix"].nbytes == 1000 * 1000 * 4
    assert "the k-NN distance matrices" not in bufs
    _, bufs = estimate(["eval.metrics=[vendi]"])
    assert bufs["the k-NN distance matrices"].nbytes == 16 * 1000 * 1000 * 4
    assert "the k-NN distance blocks" not in bufs and "the held-out distance matrix" not in bufs
    _, bufs = estimate(["data=linear", "data.dim=10", "model=linear", "loop.seeds=2"])
    assert bufs["the real set"].nbytes == 2 * 256 * 11 * 4
    # diffusion MLP: (2 + 32 + 1) x 128 + 2 x 129 x 128 + 129 x 2 weights, 4 copies (weights, EMA, 2 moments)
    _, bufs = estimate(["model=diffusion", "loop.seeds=2"])
    assert bufs["the network (weights, EMA, optimiser moments)"].nbytes == 2 * 4 * (35 * 128 + 2 * 129 * 128 + 258) * 4
    # EDM: the same MLP; with SIMS 8 copies (the auxiliary model's four)
    _, bufs = estimate(["model=edm", "guidance=sims", "loop.seeds=2"])
    assert bufs["the network (weights, EMA, optimiser moments)"].nbytes == 2 * 8 * (35 * 128 + 2 * 129 * 128 + 258) * 4


def test_just_under_fits_and_just_over_is_refused():
    cfg, bufs = estimate(["data=gaussian", "data.dim=600", "model=gmm", "loop.seeds=64"])
    largest = max(bufs.values(), key=lambda b: b.nbytes)
    total = sum(b.nbytes for b in bufs.values() if b.main)
    assert largest.name == "the model covariances" and largest.nbytes == 64 * 8 * 600 * 600 * 4
    memory.check_memory(cfg, available=max(largest.nbytes, total))  # just fits
    with pytest.raises(C.ConfigError) as err:
        memory.check_memory(cfg, available=largest.nbytes - 1)
    assert str(err.value).startswith("data.dim=600: the model covariances (64 seeds x 8 components x 600 x 600")
    assert "would need 703.1 MiB, more than the 703.1 MiB of memory available" in str(err.value)
    assert str(err.value).endswith("lower data.dim, model.components or loop.seeds")
    # the total of the buffers held together: between the largest and the total, refused on the total
    if total > largest.nbytes:
        with pytest.raises(C.ConfigError, match="the run's state would need"):
            memory.check_memory(cfg, available=total - 1)


def test_an_accumulate_pool_over_memory_names_its_fields(monkeypatch):
    monkeypatch.setenv(memory.ENV, "inf")  # compose without the check, whatever this machine has
    cfg, _ = estimate(["regime.pool=accumulate", "loop.generations=1000", "regime.n_synth=1000000"])
    with pytest.raises(C.ConfigError) as err:
        memory.check_memory(cfg, available=20 * GIB)
    msg = str(err.value)
    assert msg.startswith("regime.n_synth=1000000: the accumulated pool (16 seeds x 1000000000 slots")
    assert "more than the 20.0 GiB" in msg
    assert msg.endswith("lower regime.n_synth, loop.generations, data.dim or loop.seeds")


def test_int32_axes_are_refused():
    with pytest.raises(C.ConfigError, match=r"regime.n_real=2147483648: the real set would have an axis"):
        madloop.compose(["regime.n_real=2147483648", "loop.seeds=1", "data=moons", "model=kde"])


CONF = files("madloop.conf")
PRESETS = sorted(p.name[:-5] for p in CONF.joinpath("experiment").iterdir() if p.name.endswith(".yaml"))


@pytest.mark.parametrize("preset", [None, *PRESETS])
def test_every_preset_fits_in_one_gib(preset):
    # The presets and the docs' runs must never be refused: each needs far less than 1 GiB by this estimate.
    cfg, _ = estimate([] if preset is None else [f"experiment={preset}"])
    memory.check_memory(cfg, available=GIB)


def test_the_docs_long_runs_fit():
    # benchmarks: 1000 seeds x 1000 generations at d = 10 (and the accumulate pool kept as samples)
    long = ["experiment=gaussian_long", "data.dim=10"]
    memory.check_memory(estimate(long)[0], available=GIB)
    memory.check_memory(estimate([*long, "regime.pool=accumulate", "loop.stats_pool=false"])[0], available=8 * GIB)


def test_available_memory(monkeypatch):
    monkeypatch.delenv(memory.ENV, raising=False)
    have = memory.available_memory()
    assert have is None or have > 0
    monkeypatch.setenv(memory.ENV, "2.5")
    assert memory.available_memory() == int(2.5 * GIB)
    monkeypatch.setenv(memory.ENV, "inf")
    assert memory.available_memory() is None
    for bad in ("lots", "0", "-1", "nan"):
        monkeypatch.setenv(memory.ENV, bad)
        with pytest.raises(C.ConfigError, match=f"{memory.ENV}={bad}: must be a number of GiB > 0"):
            memory.available_memory()


def test_the_cli_refuses_a_config_that_cannot_fit_before_allocating(tmp_path):
    # d = 100000 used to allocate the 74.5 GiB truth covariance and die after a 30-line traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "madloop.run", "data=gaussian", "data.dim=100000"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "MADLOOP_MEMORY_GIB": "64"},
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: data.dim=100000: the model covariances (16 seeds x 8 components x 100000 x 100000 float32) would "
        "need 4.7 TiB, more than the 64.0 GiB of memory available; lower data.dim, model.components or loop.seeds\n"
    )
    assert list(tmp_path.iterdir()) == []
