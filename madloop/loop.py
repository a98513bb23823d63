"""The generation loop: one generation (generation 0 included) as a pure function of a run key, knobs and state.

The step reads as the numbered steps of docs/concepts.md: (1) generation g - 1 samples (a curation keeps some, a
correction moves them), (2) the samples enter the pool, (3) the regime supplies the real part, (4) generation g is
fitted on both, (5) it is evaluated. ``madloop.engine`` runs ``Loop.generation`` in one loop over g = 0..G,
vmapped over runs (``madloop.pools``, ``madloop.regimes``): generation 0 is a branch of the same function, so the
evaluation, the sampler and the metrics compile once (the two programs of a start and a step compiled them twice).

Keys are derived, never carried: generation g's key for a role is ``fold_in(fold_in(run_key, g), role)``, so
a run is deterministic, can resume from any generation, and configs that share a seed share their noise
(common random numbers): the same real data, and the same draws wherever shapes agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import _xla
from madloop import config as C
from madloop import metrics as M
from madloop.parts import Parts
from madloop.pools import count_mask, pad
from madloop.precision import float_dtype
from madloop.types import Key, Knobs, LoopState, Params

# Roles of per-generation keys.
REAL, SYNTH, FIT, SUBSAMPLE, EVAL, INIT, CURATE, INITIAL, FLOOR = range(9)
ROLES = 9


def role_key(run_key: Key, generation: jax.Array | int, role: int) -> Key:
    """The key of one role in one generation: fold_in(fold_in(run_key, generation), role)."""
    return jax.random.fold_in(jax.random.fold_in(run_key, generation), role)


def role_keys(run_key: Key, generation: jax.Array | int) -> Key:
    """Every role's key of one generation [ROLES]: ``role_keys(k, g)[r]`` is ``role_key(k, g, r)`` bit for bit.

    A generation derives them once, as fold_in(run_key, g) and one 9-wide fold_in of it, kept in a buffer
    (``madloop._xla.materialised``): derived where each is used, the CPU program compiled each role's two hashes
    into each kernel that draws with it, and those kernels were a sixth of the GMM loop's compilation
    (docs/benchmarks.md). Threefry's fold_in is vmapped over the roles; another key implementation folds each role
    in on its own (``unsafe_rbg``'s fold_in gives other bits under vmap).
    """
    base = jax.random.fold_in(run_key, generation)
    if str(jax.random.key_impl(base)) == "threefry2x32":
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(base, jnp.arange(ROLES))
    else:
        keys = jnp.stack([jax.random.fold_in(base, r) for r in range(ROLES)])
    return jax.random.wrap_key_data(_xla.materialised(jax.random.key_data(keys)), impl=jax.random.key_impl(keys))


class Row(NamedTuple):
    """One generation's outputs for one seed: metrics {name: scalar} and finite (1 when the parameters and the
    evaluation samples the sample metrics read are finite)."""

    metrics: dict[str, jax.Array]
    finite: jax.Array


def evaluated_generations(cfg: C.Config) -> np.ndarray:
    """Generations that are evaluated and have rows: 0, every, 2 every, ... (``eval.every``) and always G."""
    g = cfg.loop.generations
    return np.unique(np.append(np.arange(0, g + 1, cfg.eval.every), g)).astype(np.int32)


def snapshot_generations(cfg: C.Config) -> np.ndarray:
    """Generations whose samples are kept: 0, G and ``eval.snapshots`` evenly spaced ones in between (rounded to
    evaluated generations when ``eval.every`` > 1)."""
    g = cfg.loop.generations
    gens = np.round(np.linspace(0, g, cfg.eval.snapshots + 2))
    if cfg.eval.every > 1:  # each interior point to its nearest evaluated generation (0 and G are evaluated)
        evaluated = evaluated_generations(cfg)
        gens = evaluated[np.argmin(np.abs(evaluated[None, :] - gens[:, None]), axis=1)]
    return np.unique(gens.astype(np.int32))


class Loop(NamedTuple):
    """The per-seed pure functions of one experiment (vmap them over seeds, jit at the call site).

    Attributes:
        generation: ``generation(run_key, knobs, ref, state, g) -> (state, row)``: generation g, the one function
            every compiled program scans: for g = 0 the fit on real data alone (``state`` is read for its shapes
            only: ``blank``), for g >= 1 the step from generation g - 1. With a traced g both branches sit in one
            ``lax.cond`` and the evaluation (metrics, sampler, snapshots) is compiled once for both.
        blank: ``blank(run_key, knobs) -> state``: zeros of the loop state's shapes, the state generation 0 starts
            from.
        start: ``start(run_key, knobs, ref) -> (state, row)``: generation 0 alone (from ``blank``).
        step: ``step(run_key, knobs, ref, state, g) -> (state, row)``: generation g >= 1 (``generation`` itself,
            kept under the name callers step with).
        names: metric names in each row.
        parts: the parts the functions are built from.
        fit_once: whether a traced generation fits once after its branches (``make_loop``), not in each.
    """

    generation: Callable
    blank: Callable
    start: Callable
    step: Callable
    names: tuple[str, ...]
    parts: Parts
    fit_once: bool = False


def make_loop(cfg: C.Config, parts: Parts) -> Loop:
    """Builds the generation function of a validated config from its parts."""
    source, train_source, guided, curation, correction, pool = (
        parts.source,
        parts.train_source,
        parts.guided,
        parts.curation,
        parts.correction,
        parts.pool,
    )
    regime, names, dim = cfg.regime, parts.metrics, source.dim
    evaluate = make_evaluator(cfg, parts)
    every = cfg.eval.every
    nan = np.asarray(np.nan, float_dtype())
    skipped = Row({name: nan for name in names}, nan)  # the row of a generation that is not evaluated
    n_snapshots = len(snapshot_generations(cfg))

    def fit(keys: Key, params: Params, x, w, knobs: Knobs, warm: bool) -> Params:
        """A generation's fit (its ``role_keys``): from scratch (init, then the from-scratch budget) or warm from
        the previous generation's parameters."""
        if not warm:
            params = guided.init(keys[INIT], x, w)
        return guided.fit(keys[FIT], params, x, w, warm, knobs)

    def report_of(report: dict) -> dict:
        return {name: jnp.asarray(report[name], float_dtype()) for name in curation.report}

    def first_set(keys: Key, knobs: Knobs):
        """Generation 0's (training set x [T, d], w [T], real set, pool, pool weights, report): real data alone
        (``keys``: generation 0's ``role_keys``)."""
        real, initial = initial_real(cfg, train_source, keys)
        if regime.n_initial is None:  # the real set (its first knobs n_real samples) padded to T
            x, w = pad(real, count_mask(regime.n_real, knobs["n_real"]), parts.train_size)
        else:  # n_initial real samples: the real set cut, or extended by further draws
            x, w = pad(initial, jnp.ones((initial.shape[0],), initial.dtype), parts.train_size)
        pool_state, pool_w = pool.empty(real.shape[1], real.dtype)
        no_report = {name: nan for name in curation.report}  # no candidates yet
        return x, w, real, pool_state, pool_w, report_of(no_report)

    def first_fit(keys: Key, knobs: Knobs):
        """Generation 0's (params, real set, pool, pool weights, report): a fit on real data alone."""
        x, w, *rest = first_set(keys, knobs)
        return fit(keys, None, x, w, knobs, warm=False), *rest

    @jax.jit  # traced once per input shapes: ``blank``'s eval_shape and the compiled programs share the trace
    def first(run_key: Key, knobs: Knobs):
        """``first_fit`` of a run key."""
        return first_fit(role_keys(run_key, 0), knobs)

    def later_set(keys: Key, knobs: Knobs, state: LoopState, g: jax.Array):
        """Generation g >= 1's (training set x [T, d], w [T], real set, pool, pool weights, report), steps 1-3 of
        docs/concepts.md, for a pool of samples."""
        pool_state, pool_w, x_real, w_real, report = synthetic_and_real(keys, knobs, state, g)
        x, w = pool.training(keys[SUBSAMPLE], pool_state, pool_w, x_real, w_real, knobs)
        return x, w, state.real, pool_state, pool_w, report_of(report)

    def synthetic_and_real(keys: Key, knobs: Knobs, state: LoopState, g: jax.Array):
        """Generation g >= 1's (pool, pool weights, real part, its weights, the curation's report): steps 1-3."""
        # 1. Generation g - 1 draws the synthetic samples (with its sampling bias); a curation keeps n_synth of
        # the k * n_synth (k = 1 without curation) and reports on them (a verifier's kept share).
        synth = guided.sample(keys[SYNTH], state.params, curation.k * regime.n_synth, knobs)
        synth, report = curation.select(keys[CURATE], synth, knobs)
        synth = correction.apply(synth, knobs)  # a correction moves them toward the truth (gamma traced)
        # 2. They enter the synthetic pool by its policy (their first knobs n_synth: a count sweep's mask).
        pool_state, pool_w = pool.add(state.pool, state.pool_w, synth, g, knobs["n_synth"])
        # 3. The regime supplies the real part of the training set (its first knobs n_real samples).
        x_real, w_real = parts.regime.real_part(keys[REAL], state.real, train_source)
        w_real = w_real * count_mask(w_real.shape[0], knobs["n_real"])
        return pool_state, pool_w, x_real, w_real, report

    def later(keys: Key, knobs: Knobs, state: LoopState, g: jax.Array):
        """Generation g >= 1's (params, real set, pool, pool weights, report), steps 1-4 of docs/concepts.md."""
        pool_state, pool_w, x_real, w_real, report = synthetic_and_real(keys, knobs, state, g)
        # 4. Generation g is fitted on the real part and the pool (warm-started from g - 1, or from scratch).
        params = pool.train(
            keys[SUBSAMPLE],
            pool_state,
            pool_w,
            x_real,
            w_real,
            knobs,
            lambda x, w: fit(keys, state.params, x, w, knobs, warm=cfg.loop.warm_start),
        )
        return params, state.real, pool_state, pool_w, report_of(report)

    def blank(run_key: Key, knobs: Knobs) -> LoopState:
        params, real, pool_state, pool_w, _ = jax.tree.map(
            lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(first, run_key, knobs)
        )
        snapshots = jnp.zeros((n_snapshots, cfg.eval.snapshot_n, dim), real.dtype)
        return LoopState(params, real, pool_state, pool_w, snapshots)

    # One fit after the branches (its program compiled once, not once per branch) where generation 0's fit and a
    # later one's are the same function of a traced g: every generation fits from scratch, or the family takes a
    # traced warm. The statistics pool fits its statistics, not a training set, and keeps a fit per branch.
    fit_once = pool.training is not None and (not cfg.loop.warm_start or guided.warm_traced)

    def fit_traced(keys: Key, g: jax.Array, state: LoopState, x, w, knobs: Knobs) -> Params:
        """Generation g's fit for a traced g: ``fit`` of generation 0 (from scratch) or of g >= 1, as one program."""
        if not cfg.loop.warm_start:  # from scratch in every generation: the same function for g = 0
            return fit(keys, None, x, w, knobs, warm=False)
        params = jax.lax.cond(g == 0, lambda: guided.init(keys[INIT], x, w), lambda: state.params)
        return guided.fit(keys[FIT], params, x, w, g > 0, knobs)

    def generation(run_key: Key, knobs: Knobs, ref: M.Reference, state: LoopState, g) -> tuple[LoopState, Row]:
        keys = role_keys(run_key, g)
        if isinstance(g, int):  # a static generation: its branch alone
            out = first(run_key, knobs) if g == 0 else later(keys, knobs, state, jnp.int32(g))
        elif fit_once:
            x, w, *rest = jax.lax.cond(g == 0, lambda: first_set(keys, knobs), lambda: later_set(keys, knobs, state, g))
            out = fit_traced(keys, g, state, x, w, knobs), *rest
        else:
            out = jax.lax.cond(g == 0, lambda: first_fit(keys, knobs), lambda: later(keys, knobs, state, g))
        params, real, pool_state, pool_w, report = out
        # 5. Generation g is evaluated (its parameters, its own fresh samples, and the curation's report); with
        # eval.every > 1 only every every-th generation and G are (the others' rows are NaN and are not written).
        if every == 1 or isinstance(g, int) and (g % every == 0 or g == cfg.loop.generations):
            row, snapshots = evaluate(keys, g, params, knobs, ref, state.snapshots, report)
        else:
            row, snapshots = jax.lax.cond(
                (g % every == 0) | (g == cfg.loop.generations),
                lambda: evaluate(keys, g, params, knobs, ref, state.snapshots, report),
                lambda: (skipped, state.snapshots),
            )
        return LoopState(params, real, pool_state, pool_w, snapshots), row

    def start(run_key: Key, knobs: Knobs, ref: M.Reference) -> tuple[LoopState, Row]:
        return generation(run_key, knobs, ref, blank(run_key, knobs), 0)

    return Loop(generation, blank, start, generation, names, parts, fit_once)


def initial_real(cfg: C.Config, train_source, keys: Key) -> tuple[jax.Array, jax.Array]:
    """(the real set [n_real, d] later generations reuse, generation 0's training samples [n_initial, d]), drawn
    with generation 0's ``role_keys``.

    Without ``regime.n_initial`` both are the real set. With it, the real set is the same as without (common random
    numbers), and generation 0 fits its first n_initial samples, or all of it plus n_initial - n_real further draws
    (a finite data set draws all n_initial at once, without replacement).
    """
    regime = cfg.regime
    n0 = regime.n_initial
    if n0 is not None and n0 > regime.n_real and train_source.size is not None:
        first = train_source.sample(keys[REAL], n0)
        return first[: regime.n_real], first
    real = train_source.sample(keys[REAL], regime.n_real)
    if n0 is None:
        return real, real
    if n0 > regime.n_real:
        extra = train_source.sample(keys[INITIAL], n0 - regime.n_real)
        return real, jnp.concatenate([real, extra])
    return real, real[:n0]


def make_evaluator(cfg: C.Config, parts: Parts) -> Callable:
    """``evaluate(keys, g, params, knobs, ref, snapshots, report) -> (row, snapshots)``: generation g's metrics
    (with the curation's report on the candidates generation g was trained on), and its samples kept when g is a
    snapshot generation. ``finite`` = 0 where the parameters or the evaluation samples the sample metrics read are
    not finite; every metric is NaN where the parameters are not finite, and the sample metrics also where the
    samples are not (the parameter metrics of finite parameters stay)."""
    names, guided, ctx, dim = parts.metrics, parts.guided, parts.context, parts.source.dim
    snap_gens = np.asarray(snapshot_generations(cfg), np.int32)
    samples_read = M.needs_samples(names)
    sample_names = {k: M.is_sample_metric(k) for k in names}
    n_draw = max(cfg.eval.n if samples_read else 0, cfg.eval.snapshot_n)

    def evaluate(keys, g, params, knobs, ref, snapshots, report):
        metrics = M.evaluate_params(names, guided.base(params), ctx, ref)
        metrics.update(M.evaluate_loop(names, report, ctx, ref))

        def draw(n: int) -> jax.Array:
            return guided.sample(keys[EVAL], params, n, knobs)[:, :dim]

        hit = snap_gens == g
        slot = jnp.argmax(hit)
        old = jax.lax.dynamic_index_in_dim(snapshots, slot, keepdims=False)
        if samples_read:
            samples = draw(n_draw)
            metrics.update(M.evaluate_samples(names, samples[: cfg.eval.n], ctx, ref))
            new = jnp.where(jnp.any(hit), samples[: cfg.eval.snapshot_n], old)
        else:  # parameter metrics only: draw (the same samples) at snapshot generations alone
            new = jax.lax.cond(jnp.any(hit), lambda: draw(n_draw)[: cfg.eval.snapshot_n], lambda: old)
        params_ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        # A sampler can diverge from finite parameters: the sample metrics would then count NaN samples.
        samples_ok = jnp.all(jnp.isfinite(samples[: cfg.eval.n])) if samples_read else jnp.bool_(True)
        finite = params_ok & samples_ok
        # Columns in the order eval.metrics names them; NaN wherever the parameters are not finite, and the sample
        # metrics also where the samples are not.
        metrics = {
            k: jnp.where((finite if sample_names[k] else params_ok), jnp.asarray(metrics[k], float_dtype()), jnp.nan)
            for k in names
        }
        # Keep this generation's samples if it is a snapshot generation (one slot update, no full select).
        snapshots = jax.lax.dynamic_update_index_in_dim(snapshots, new, slot, 0)
        return Row(metrics, finite.astype(float_dtype())), snapshots

    return evaluate


def make_floors(cfg: C.Config, parts: Parts) -> Callable | None:
    """``floors(run_key, ref) -> {name: scalar}``: the sample metrics of ``eval.n`` fresh real samples against the
    held-out reference (their real-vs-real floor at the sample size the run uses: what a perfect model scores),
    one draw per seed; None when the run computes no sample metric.

    The real samples come from the training source (the training images of a finite data set, which the held-out
    images are not part of; fresh truth samples of a distribution).
    """
    names = tuple(n for n in parts.metrics if M.is_sample_metric(n))
    if not names:
        return None
    source, ctx, n = parts.train_source, parts.context, cfg.eval.n

    def floors(run_key: Key, ref: M.Reference) -> dict[str, jax.Array]:
        real = source.sample(role_key(run_key, 0, FLOOR), n)[:, : parts.source.dim]
        out = M.evaluate_samples(names, real, ctx, ref)
        return {k: jnp.asarray(out[k], float_dtype()) for k in names}

    return floors


def scan_generations(
    loop: Loop,
    length: int,
    run_keys: Key,
    knobs: Knobs,
    ref: M.Reference,
    state: LoopState,
    first: jax.Array,
    count: jax.Array,
) -> tuple[LoopState, Row]:
    """Runs generations first .. first + count - 1 (count <= length, both traced: one program serves generation 0
    alone, every chunk and a last shorter one) for a batch of runs: run keys [B], knobs [B], state [B, ...].
    Rows are [B, length]; those past ``count`` are NaN.

    The generation is vmapped inside the loop, not the loop over runs: batching a traced while loop traces its
    body again for each round of finding which carries are batched (the default experiment's trace 1.0 -> 0.85 s).
    """
    generation = jax.vmap(loop.generation, in_axes=(0, 0, None, 0, None))
    nan = jnp.full((run_keys.shape[0], length), jnp.nan, float_dtype())
    rows = Row({name: nan for name in loop.names}, nan)

    def body(i, carry):
        state, rows = carry
        state, row = generation(run_keys, knobs, ref, state, first + i)
        return state, jax.tree.map(lambda buf, r: buf.at[:, i].set(r), rows, row)

    return jax.lax.fori_loop(0, count, body, (state, rows))
