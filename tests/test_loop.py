"""The engine end to end: every regime x pool x family, determinism, compilation, chunking, divergence."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_DIFFUSION, TINY_EDM, TINY_FLOW, TINY_FLOW_MATCHING, TINY_GAN, TINY_SIMS

import madloop
from madloop.engine import simulation

FAMILIES = {
    "gaussian": ["data=gaussian", "model=gaussian"],
    "gmm": ["data=ring8", "model=gmm", "model.components=4", "model.init_iters=20", "model.iters=3"],
    "kde": ["data=moons", "model=kde"],
    # a tiny diffusion model with SIMS guidance: the base, the auxiliary fine-tune and the guided sampler
    "diffusion_sims": TINY_DIFFUSION + TINY_SIMS,
    # the same with EDM's preconditioned denoiser and Heun sampler
    "edm_sims": TINY_EDM + TINY_SIMS,
    # flow matching (OT coupling) with SIMS: the base, the auxiliary fine-tune and the guided ODE sampler
    "flow_matching_sims": TINY_FLOW_MATCHING + TINY_SIMS,
    "flow": TINY_FLOW,
    # a tiny WGAN-GP, truncated (bias.lam = psi = 0.8): critic and generator updates, warm start, sampling
    "gan": [*TINY_GAN, "bias.lam=0.8"],
    # token models on discrete truths (smoothed, so that the held-out nll is finite; truncated sampling)
    "categorical": ["data=zipf", "data.vocab=50", "model=categorical", "model.smoothing=0.5", "model.top_k=40"],
    "ngram": ["data=markov", "data.vocab=8", "data.length=12", "model=ngram", "model.order=2"]
    + ["model.smoothing=0.5", "model.top_p=0.9"],
    "transformer": ["data=markov", "data.vocab=6", "data.length=8", "model=transformer", "model.width=16"]
    + ["model.depth=1", "model.heads=2", "model.train_steps=10", "model.finetune_steps=4", "model.batch=8"],
}
# families whose training scans report progress (host callbacks; "flow" covers flow_matching too)
NEURAL = ("diffusion", "edm", "flow", "gan", "transformer")
HAS_DENSITY = {"gaussian", "gmm", "kde"}
DISCRETE = {"categorical", "ngram", "transformer"}


REGIMES = ["fully_synthetic", "synthetic_augmentation", "fresh_data"]
POOLS = ["replace", "accumulate", "accumulate_subsample"]
# Every regime x pool for the Gaussian (the regime and pool code is family-agnostic, and the Gaussian keeps its
# accumulated pool as statistics); the GMM and the KDE on three pairs that cover every regime and every pool once
# (their pools are the sample pools; the other six pairs each added a ~10 s compile and no code path); the neural
# families, whose programs take ~13 s each to compile, on three such pairs: the first in the default tier, the
# other two in the slow tier (the default tier's time budget).
COMBINATIONS = [("gaussian", r, p) for r in REGIMES for p in POOLS]
COMBINATIONS += [("gmm", r, p) for r, p in zip(REGIMES, POOLS, strict=True)]
COMBINATIONS += [("kde", r, p) for r, p in zip(REGIMES, reversed(POOLS), strict=True)]
for _family, _pools in [(f, list(reversed(POOLS))) for f in ("diffusion_sims", "edm_sims", "gan")] + [
    (f, POOLS) for f in ("flow_matching_sims", "flow")
]:
    COMBINATIONS += [
        pytest.param(_family, r, p, marks=[pytest.mark.slow] * (i > 0))
        for i, (r, p) in enumerate(zip(REGIMES, _pools, strict=True))
    ]
# The token models on the three pairs that cover every regime and every pool once (their pools are the same code).
COMBINATIONS += [
    pytest.param("ngram", r, p, marks=[pytest.mark.slow] * (r != "fully_synthetic"))
    for r, p in zip(REGIMES, POOLS, strict=True)
]
COMBINATIONS += [pytest.param("transformer", "fully_synthetic", "accumulate", marks=pytest.mark.slow)]


@pytest.mark.parametrize("family,regime,pool", COMBINATIONS)
def test_every_combination_runs_two_generations(tiny, family, regime, pool):
    metrics = ["sw2", "nll"] if family in HAS_DENSITY | {"flow"} else ["sw2", "recall"]
    if family in DISCRETE:
        metrics = ["nll", "distinct_1", "kl_rate" if family == "transformer" else "kl_forward"]
    table = madloop.run_table(
        tiny + FAMILIES[family] + [f"regime={regime}", f"regime.pool={pool}", f"eval.metrics=[{','.join(metrics)}]"]
    )
    assert list(table.columns) == ["seed", "generation", *metrics, "finite"]
    assert len(table) == 2 * 3  # 2 seeds x generations 0..2
    assert (table["finite"] == 1).all()
    assert np.isfinite(table[metrics].to_numpy()).all()


# The loop operators (curation=verifier, correction=toward_truth) on the supervised family, both traced knobs swept in
# one program: every regime with every pool, in the slow tier (each program compiles for about 10 s of CPU); the
# default tier runs both operators under sweeps in tests/test_regression_laws.py.
OPERATORS = [
    "data=linear",
    "data.dim=3",
    "model=linear",
    "curation=verifier",
    "sweep.curation.noise=[0.0,0.5]",
    "correction=toward_truth",
    "sweep.correction.gamma=[0.0,0.5]",
]


@pytest.mark.slow
@pytest.mark.parametrize("regime,pool", [(r, p) for r in REGIMES for p in POOLS])
def test_verifier_and_correction_run_in_every_regime_and_pool_under_sweeps(tiny, regime, pool):
    metrics = ["test_error", "kept_share", "false_accept", "false_reject", "unfilled"]
    table = madloop.run_table(
        tiny + OPERATORS + [f"regime={regime}", f"regime.pool={pool}", f"eval.metrics=[{','.join(metrics)}]"]
    )
    assert list(table.columns) == ["seed", "verifier_noise", "gamma", "generation", *metrics, "finite"]
    assert len(table) == 4 * 2 * 3 and (table["finite"] == 1).all()  # 4 grid points x 2 seeds x generations 0..2
    later = table[table.generation > 0]
    assert np.isfinite(table["test_error"]).all() and table.loc[table.generation == 0, metrics[1:]].isna().all().all()
    assert later["kept_share"].between(0, 1).all() and later["unfilled"].between(0, 1).all()
    noiseless = later[later.verifier_noise == 0]
    assert (noiseless["false_accept"].fillna(0) == 0).all() and (noiseless["false_reject"].fillna(0) == 0).all()


def test_default_metrics_cover_every_applicable_metric(tiny):
    table = madloop.run_table(tiny + ["data=gaussian", "model=gaussian"])
    for name in (
        "trace_ratio",
        "mean_sqerr",
        "logdet_ratio",
        "w2",
        "kl",
        "sw2",
        "mmd",
        "fd",
        "precision",
        "recall",
        "density",
        "coverage",
        "nll",
    ):
        assert name in table.columns, name
    assert "modes" not in table.columns  # a single Gaussian truth has no modes to count
    # w2 is the square root of the closed-form Frechet distance, kl is >= 0
    assert (table["w2"] >= 0).all() and (table["kl"] >= -1e-6).all()


def test_same_config_twice_gives_identical_results_without_recompiling(tiny):
    # the stepped path: generation 0 and every chunk through one program
    overrides = tiny + ["loop.generations=3", "loop.chunk=1", "eval.metrics=[sw2,modes,recall]"]
    sim = simulation(madloop.compose(overrides))
    a = sim()
    sizes = (len(sim.programs.chunks), sim.chunk_fn(1)._cache_size())
    b = simulation(madloop.compose(overrides))()  # an equal config reuses the compiled Simulation
    assert (len(sim.programs.chunks), sim.chunk_fn(1)._cache_size()) == sizes == (1, 1)
    chex.assert_trees_all_equal(a.metrics, b.metrics)
    chex.assert_trees_all_equal(a.state, b.state)
    # a config that differs only in traced values (a Hydra sweep over bias.lam or loop.seed) reuses the programs
    other = simulation(madloop.compose(overrides + ["bias.lam=0.7", "loop.seed=3"]))
    assert other.programs is sim.programs
    c = other()
    assert (len(sim.programs.chunks), sim.chunk_fn(1)._cache_size()) == (1, 1)
    assert not np.allclose(c.metrics["sw2"], a.metrics["sw2"])


@pytest.mark.parametrize("chunk", [None, 1])  # the whole run as one call; generation 0 then stepped chunks
def test_first_call_builds_the_reference_beside_the_loop_compiling_each_program_once(tiny, chunk):
    """A first call compiles the loop's program while the reference is compiled and run in a worker thread: each
    program compiles exactly once (the loop's, lowered against the reference's shapes, is the one the call runs),
    and the results equal those of a run whose reference was computed first (the serial path)."""
    from jax import monitoring

    overrides = tiny + ["loop.generations=2", "eval.metrics=[sw2,recall,trace_ratio]", "loop.seed=11"]
    overrides += [] if chunk is None else [f"loop.chunk={chunk}"]
    compiled: list[str] = []

    def listen(name: str, seconds: float, **kw) -> None:
        if name.endswith("backend_compile_duration"):
            compiled.append(kw.get("fun_name", "?"))

    # (the event wraps XLA's compilation and the persistent cache's lookup alike: a program read from disk counts)
    monitoring.register_event_duration_secs_listener(listen)
    try:
        fresh = simulation(madloop.compose(overrides + ["eval.k=4"]))  # a static config of its own: new programs
        ahead = fresh()
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiled.count("jit(scan_generations)") == 1 and compiled.count("jit(reference)") == 1, compiled
    assert fresh.programs.references[11] is not None
    serial = simulation(madloop.compose(overrides + ["eval.k=4"]))
    assert serial.programs is fresh.programs
    serial.programs.references.clear()
    serial.reference()  # computed before the call: the call takes the cached reference (no worker)
    chex.assert_trees_all_equal(serial().metrics, ahead.metrics)


def test_an_error_building_the_reference_in_its_worker_reaches_the_caller(tiny, monkeypatch):
    sim = simulation(madloop.compose(tiny + ["loop.generations=1", "loop.seed=12", "eval.k=6"]))
    sim.programs.references.clear()

    def broken(*args):
        raise FloatingPointError("reference broke")

    class Lowered:
        out_info = None

        def compile(self):
            return broken

    monkeypatch.setattr(sim, "_reference", type("R", (), {"lower": lambda self, *a: Lowered()})())
    with pytest.raises(FloatingPointError, match="reference broke"):
        sim()
    assert 12 not in sim.programs.references


def test_a_call_that_fails_while_the_reference_builds_waits_for_its_worker(tiny, monkeypatch):
    """An error in the caller's thread (a checkpoint from another config, an interrupt) while the reference is being
    built in its worker: the worker is joined before the error propagates (no thread is left inside XLA), and the
    reference is not kept."""
    import threading

    sim = simulation(madloop.compose(tiny + ["loop.generations=1", "loop.seed=13", "eval.k=7"]))
    sim.programs.references.clear()

    def fails(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "_run", fails)
    with pytest.raises(KeyboardInterrupt):
        sim()
    assert not any(t.name == "madloop-reference" and t.is_alive() for t in threading.enumerate())
    assert 13 not in sim.programs.references


def test_stepped_chunks_equal_the_single_program(tiny):
    base = tiny + ["loop.generations=4", "data=gaussian", "model=gaussian", "eval.metrics=[trace_ratio,sw2,w2]"]
    one = madloop.simulate(base + ["loop.chunk=4"])
    stepped = madloop.simulate(base + ["loop.chunk=3"])  # chunks of 3 and 1: two programs
    chex.assert_trees_all_close(stepped.metrics, one.metrics, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(stepped.state, one.state, rtol=1e-5, atol=1e-6)


def test_generation_zero_shares_real_data_across_regimes(tiny):
    # Common random numbers: the same seed gives the same generation-0 real set and fit whatever the regime.
    runs = [
        madloop.simulate(
            tiny + ["data=gaussian", "model=gaussian", f"regime={r}", f"regime.pool={p}", "eval.metrics=[trace_ratio]"]
        )
        for r, p in (("fully_synthetic", "replace"), ("fresh_data", "accumulate"))
    ]
    np.testing.assert_array_equal(np.asarray(runs[0].state.real), np.asarray(runs[1].state.real))
    np.testing.assert_allclose(runs[0].metrics["trace_ratio"][:, 0], runs[1].metrics["trace_ratio"][:, 0], rtol=1e-5)


def test_divergence_is_reported_per_seed_not_averaged(tiny):
    # A sampling bias of 1e20 multiplies the covariance by 1e20 per generation: float32 overflows by g = 2.
    with pytest.warns(RuntimeWarning, match="2 of 2 runs have non-finite parameters"):
        r = madloop.simulate(
            tiny
            + [
                "data=gaussian",
                "model=gaussian",
                "bias.lam=1e20",
                "loop.generations=3",
                "loop.chunk=3",
                "eval.metrics=[trace_ratio,sw2]",
            ]
        )
    table = r.table()
    assert (table.loc[table.generation == 0, "finite"] == 1).all()
    bad = table[table.finite == 0]
    assert len(bad) > 0 and bad[["trace_ratio", "sw2"]].isna().all().all()


def test_fresh_data_without_synthetic_samples_is_iid_refitting(tiny):
    # n_synth = 0 under fresh data: each generation is an independent fit to n_real new samples, so
    # E[trace_ratio] = (n - 1) / n at every generation (MLE), with no drift.
    r = madloop.simulate(
        [
            "data=gaussian",
            "model=gaussian",
            "regime=fresh_data",
            "regime.n_real=20",
            "regime.n_synth=0",
            "loop.generations=5",
            "loop.seeds=2000",
            "loop.chunk=5",
            "eval.metrics=[trace_ratio]",
            "eval.snapshot_n=1",
            "eval.snapshots=0",
        ]
    )
    tr = r.metrics["trace_ratio"]
    se = tr.std(axis=0, ddof=1) / np.sqrt(tr.shape[0])
    assert np.all(np.abs(tr.mean(axis=0) - 19 / 20) < 4.5 * se)


def test_warm_start_switch_changes_the_gmm_fit(tiny):
    base = tiny + ["model.components=4", "model.init_iters=30", "model.iters=1", "eval.metrics=[nll]"]
    warm = madloop.simulate(base + ["loop.warm_start=true"]).metrics["nll"]
    cold = madloop.simulate(base + ["loop.warm_start=false"]).metrics["nll"]
    np.testing.assert_array_equal(warm[:, 0], cold[:, 0])  # generation 0 is a fit from scratch in both
    assert not np.allclose(warm[:, 1:], cold[:, 1:])


def test_knobs_are_traced_not_compiled_in(tiny):
    # bias.lam enters the program as an argument: the compiled function is the same for every value.
    from madloop.engine import Simulation

    cfg = madloop.compose(tiny + ["data=gaussian", "model=gaussian"])
    sim = Simulation(cfg)
    run_keys, knobs, _, _ = sim.runs()
    ref = sim.reference()
    outs = [sim.run_all(run_keys, {**knobs, "lam": jax.numpy.full_like(knobs["lam"], lam)}, ref)[1] for lam in (0.5, 1)]
    assert sim.chunk_fn(cfg.loop.generations + 1)._cache_size() == 1
    assert not np.allclose(outs[0].metrics["trace_ratio"][:, 1:], outs[1].metrics["trace_ratio"][:, 1:])


@pytest.mark.parametrize(
    "family", [pytest.param(f, marks=[pytest.mark.slow] * (f == "transformer")) for f in sorted(FAMILIES)]
)  # the transformer's loop takes 85 s to trace on a loaded 2-core CPU
def test_compiled_loop_has_no_lapack_custom_calls(tiny, family):
    # Batched LAPACK custom calls (cholesky, triangular solve, eigh) deadlocked XLA's 2-thread CPU pool when two
    # ran concurrently (see madloop/linalg.py); the loop must use madloop.linalg's plain XLA ops instead.
    import re

    from madloop.engine import Simulation

    cfg = madloop.compose(tiny + FAMILIES[family])
    sim = Simulation(cfg)
    run_keys, knobs, _, _ = sim.runs()
    blank = sim.programs.blank(run_keys, knobs)
    g = cfg.loop.generations
    text = sim.chunk_fn(g + 1).lower(run_keys, knobs, sim.reference(), blank, 0, g + 1).as_text()
    assert "stablehlo.custom_call" in jax.jit(jax.numpy.linalg.cholesky).lower(jax.numpy.eye(2)).as_text()
    calls = re.findall(r"stablehlo.custom_call @(\w+)", text)
    # the only custom calls allowed are the progress ticks of neural training scans (madloop.progress)
    assert [c for c in calls if "callback" not in c] == []
    assert not any("callback" in c for c in calls) or family.startswith(NEURAL)


@pytest.mark.parametrize(
    "regime",
    [
        ["regime=fully_synthetic", "sweep.regime.n_synth=[24,10]"],
        ["regime=fresh_data", "regime.real_weight=3", "model.estimator=unbiased"],
    ],
    ids=["fully_synthetic_count_sweep", "fresh_weighted_unbiased"],
)
def test_an_accumulate_pool_kept_as_statistics_fits_what_the_sample_pool_fits(regime):
    """Chan's merge of the pool's statistics gives the fits that refitting on every accumulated sample gives
    (up to float32 rounding), with the real weight, the unbiased estimator and a count sweep; the pool holds no
    samples."""
    overrides = [
        "data=gaussian",
        "model=gaussian",
        "regime.pool=accumulate",
        "loop.generations=12",
        "loop.seeds=8",
        "loop.chunk=12",
        "eval.metrics=[trace_ratio,mean_sqerr,w2]",
        "plots=false",
        "regime.n_real=32",
        "regime.n_synth=24",
        *regime,
    ]
    stats = madloop.simulate(overrides)
    samples = madloop.simulate([*overrides, "loop.stats_pool=false"])
    assert stats.state.pool.mean.shape == (stats.seed.shape[0], 2)  # statistics, not a [G n, d] buffer
    assert samples.state.pool.shape[1:] == (12 * 24, 2)
    for name in stats.names:
        np.testing.assert_allclose(stats.metrics[name], samples.metrics[name], rtol=2e-4, atol=1e-6)


def test_initial_sample_size_keeps_the_real_set_and_fits_a_kde_loop():
    # regime.n_initial changes generation 0's fit, not the real set (common random numbers): synthetic
    # augmentation's fixed set is the same with n_initial 5, 30 and null. A KDE, whose parameters are its
    # training rows, runs with generation 0 larger than every later training set.
    common = ["data=gaussian", "model=gaussian", "regime=synthetic_augmentation", "regime.n_real=12"]
    common += ["regime.n_synth=8", "loop.generations=2", "loop.seeds=2", "eval.metrics=[trace_ratio]"]
    runs = {n0: madloop.simulate([*common, f"regime.n_initial={n0}"]) for n0 in ("null", 5, 30)}
    for n0 in (5, 30):
        np.testing.assert_array_equal(np.asarray(runs[n0].state.real), np.asarray(runs["null"].state.real))
        assert not np.array_equal(runs[n0].metrics["trace_ratio"][:, 0], runs["null"].metrics["trace_ratio"][:, 0])
    kde = madloop.run_table(
        ["model=kde", "regime=fresh_data", "regime.n_real=20", "regime.n_synth=10", "regime.n_initial=100"]
        + ["loop.generations=2", "loop.seeds=2", "eval.metrics=[nll]"]
    )
    assert kde["finite"].eq(1).all() and np.isfinite(kde["nll"]).all()


def test_non_finite_samples_from_finite_parameters_mark_the_row():
    """A sampler can diverge while the parameters stay finite (a diffusion trajectory overflowing): the row's sample
    metrics would then be computed on NaN samples (k-NN counts read NaN distances as "far"), so the row is marked
    finite = 0 and its sample metrics NaN; the parameter metrics stay."""
    from madloop.engine import Simulation
    from madloop.loop import make_loop

    cfg = madloop.compose(
        ["data=gaussian", "model=gaussian", "loop.seeds=1", "loop.generations=1", "eval.n=64", "eval.snapshot_n=8"]
        + ["eval.metrics=[trace_ratio,precision,sw2]"]
    )
    sim = Simulation(cfg)
    keys, knobs, _, _ = sim.runs()
    key, knob = keys[0], {k: v[0] for k, v in knobs.items()}
    guided = sim.loop.parts.guided
    bad = guided._replace(sample=lambda k, p, n, kn: guided.sample(k, p, n, kn).at[3, 0].set(jnp.inf))
    for g, want in ((guided, 1.0), (bad, 0.0)):
        loop = make_loop(cfg, sim.loop.parts._replace(guided=g))
        _, row = loop.start(key, knob, sim.reference())
        assert float(row.finite) == want
        assert np.isfinite(float(row.metrics["trace_ratio"]))  # the parameters are finite: their metric stays
        values = np.array([float(row.metrics[k]) for k in ("precision", "sw2")])
        assert np.isfinite(values).all() if want else np.isnan(values).all()


def test_parameter_path_keeps_every_generation_of_the_same_runs(tiny):
    """madloop.parameter_path steps the runs simulate() steps: the same metrics, its last generation is the final
    state, and generation 0's Gaussian is the real set's fit; a second call with other traced values does not
    recompile (the GMM's path is exercised in tests/validation/test_augmentation.py)."""
    base = tiny + ["data=gaussian", "model=gaussian", "regime=synthetic_augmentation", "loop.generations=3"]
    overrides = base + ["sweep.bias.lam=[1,0.9]", "eval.metrics=[trace_ratio,mean_sqerr]"]
    path, result = madloop.parameter_path(overrides), madloop.simulate(overrides)
    assert path.params.mean.shape == (4, 4, 2)  # [runs = 2 lam x 2 seeds, G + 1, d]
    np.testing.assert_array_equal(path.seed, result.seed)
    np.testing.assert_array_equal(path.knobs["lam"], result.knobs["lam"])
    chex.assert_trees_all_close(path.metrics, result.metrics, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[:, -1], path.params), result.state.params, rtol=1e-5)
    np.testing.assert_allclose(path.params.mean[:, 0], np.asarray(result.state.real).mean(axis=1), atol=1e-5)
    program = simulation(madloop.compose(overrides)).programs.path_fn()
    madloop.parameter_path(overrides + ["loop.seed=5"])
    assert program._cache_size() == 1


@pytest.mark.parametrize(
    ("family", "warm"), [("gmm", True), ("gmm", False), ("gaussian", True), ("flow_warm_false", False)]
)
def test_one_fit_after_the_branches_equals_a_fit_in_each_branch(tiny, monkeypatch, family, warm):
    """The loop fits once after generation 0's and the later generations' branches (their training sets) where both
    fits are one function of a traced g: from scratch every generation, or a family that takes a traced warm (the
    GMM's EM count). Its values must equal the fit in each branch: the same arithmetic, to float32 rounding that
    the two programs' fusions may order differently and 30 EM iterations a generation carry (under the suite's XLA
    flags, 1e-5 in a mixture weight and in a component mean on the ring of radius 2 after three generations). A
    wrong key, warm flag or EM count moves them far more. It compiles one EM loop fewer."""
    from madloop import engine
    from madloop.engine import Simulation

    overrides = {
        "gmm": ["data=ring8", "model=gmm", "model.components=4", "model.init_iters=30", "model.iters=2"],
        "gaussian": ["data=gaussian", "model=gaussian"],
        "flow_warm_false": [*TINY_FLOW, "model.train_steps=3"],
    }[family]
    cfg = madloop.compose([*tiny, *overrides, f"loop.warm_start={warm}", "loop.generations=3", "loop.chunk=3"])
    programs, paths = {}, {}

    def run(per_branch: bool):
        if per_branch:  # a pool without training(): the fit in each branch, as before
            real = engine.parts_of
            no_training = lambda c: (p := real(c))._replace(pool=p.pool._replace(training=None))
            monkeypatch.setattr(engine, "parts_of", no_training)
        sim = Simulation(cfg)
        paths[per_branch] = sim.loop.fit_once
        result = sim()
        programs[per_branch] = sim.chunk_fn(4).lower(*_chunk_args(sim)).compile().as_text()
        return result

    once, each = run(False), run(True)
    assert paths == {False: True, True: False}  # the two paths ran
    for name in once.metrics:
        np.testing.assert_allclose(once.metrics[name], each.metrics[name], rtol=1e-4, atol=1e-6, err_msg=name)
    chex.assert_trees_all_close(once.state.params, each.state.params, rtol=1e-4, atol=1e-4)
    if family == "gmm":  # EM's while loop: once after the branches, against once in each
        assert programs[False].count(" while(") < programs[True].count(" while(")


def _chunk_args(sim):
    run_keys, knobs, _, _ = sim.runs()
    return run_keys, knobs, sim.reference(), sim.programs.blank(run_keys, knobs), 0, 4


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg", "unsafe_rbg"])
def test_role_keys_are_the_role_keys_one_by_one(impl):
    """A generation's role keys, derived at once (and materialised), are each role's own key bit for bit, for every
    key implementation (unsafe_rbg's fold_in gives other bits under vmap: its roles are folded in one by one)."""
    from madloop.loop import ROLES, role_key, role_keys

    run_keys = jax.random.split(jax.random.key(3, impl=impl), 5)
    for g in (0, 1, 999):
        at_once = jax.jit(jax.vmap(role_keys, in_axes=(0, None)))(run_keys, jnp.int32(g))
        for r in range(ROLES):
            one = jax.jit(jax.vmap(role_key, in_axes=(0, None, None)), static_argnums=2)(run_keys, jnp.int32(g), r)
            np.testing.assert_array_equal(jax.random.key_data(at_once[:, r]), jax.random.key_data(one))
