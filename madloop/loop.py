"""The generation loop: one generation is a pure function; the engine scans it, vmapped over seeds.

Keys are derived, never carried: generation g's key for a role is ``fold_in(fold_in(run_key, g), role)``, so
a run is deterministic, can resume from any generation, and configs that share a seed share their noise
(common random numbers): the same real data, and the same draws wherever shapes agree.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import config as C
from madloop import metrics as M
from madloop import regimes as R
from madloop.checkpoint import Checkpointer
from madloop.curation import make_curation
from madloop.data import DataSource, make_source
from madloop.guidance import Guided, make_guidance
from madloop.models import make_model
from madloop.precision import float_dtype, precision
from madloop.types import GenerativeModel, Key, Knobs, LoopState

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is built (0.45 s of start-up otherwise)

# Roles of per-generation keys.
REAL, SYNTH, FIT, SUBSAMPLE, EVAL, INIT, CURATE, INITIAL = range(8)
# Run-level streams derived from the base key key(loop.seed).
_SEEDS, _HELDOUT, _PROJECTIONS = range(3)


def role_key(run_key: Key, generation: jax.Array | int, role: int) -> Key:
    """The key of one role in one generation: fold_in(fold_in(run_key, generation), role)."""
    return jax.random.fold_in(jax.random.fold_in(run_key, generation), role)


def knobs_of(cfg: C.Config) -> Knobs:
    """The config's knobs as scalars: floats in the run's precision (``float_dtype``), counts as int32."""
    omega = getattr(cfg.guidance, "omega", 0.0)
    r = cfg.regime
    f = float_dtype()
    return Knobs(
        jnp.asarray(cfg.bias.lam, f),
        jnp.asarray(r.real_weight, f),
        jnp.asarray(omega, f),
        jnp.int32(r.n_real),
        jnp.int32(r.n_synth),
        jnp.asarray(getattr(cfg.curation, "temperature", 1.0), f),
    )


def knob_grid(cfg: C.Config) -> tuple[Knobs, dict[str, np.ndarray]]:
    """The swept knobs' grid: Knobs of arrays [K] (the Cartesian product of ``sweep.*`` lists; K = 1 without a
    sweep) and the swept columns {name: [K]} for the table."""
    base = knobs_of(cfg)
    sw = cfg.sweep
    lists = {
        "lam": sw.bias.lam,
        "real_weight": sw.regime.real_weight,
        "omega": sw.guidance.omega,
        "n_real": sw.regime.n_real,
        "n_synth": sw.regime.n_synth,
        "temperature": sw.curation.temperature,
    }
    axes = [
        np.asarray(v if v is not None else [getattr(base, k).item()], getattr(base, k).dtype) for k, v in lists.items()
    ]
    mesh = np.meshgrid(*axes, indexing="ij")
    flat = {k: m.reshape(-1) for k, m in zip(lists, mesh, strict=True)}
    columns = {
        k: flat[k].astype(np.int64 if k.startswith("n_") else np.float64) for k, v in lists.items() if v is not None
    }
    return Knobs(*(jnp.asarray(flat[k]) for k in lists)), columns


class Row(NamedTuple):
    """One generation's outputs for one seed: metrics {name: scalar} and finite (1 when the parameters are)."""

    metrics: dict[str, jax.Array]
    finite: jax.Array


def snapshot_generations(cfg: C.Config) -> np.ndarray:
    """Generations whose samples are kept: 0, G and ``eval.snapshots`` evenly spaced ones in between."""
    g = cfg.loop.generations
    return np.unique(np.round(np.linspace(0, g, cfg.eval.snapshots + 2)).astype(np.int32))


class Loop(NamedTuple):
    """The per-seed pure functions of one experiment (vmap them over seeds, jit at the call site).

    Attributes:
        start: ``start(run_key, knobs, ref) -> (state, row)``: generation 0, fitted on real data only.
        step: ``step(run_key, knobs, ref, state, g) -> (state, row)``: generation g >= 1.
        names: metric names in each row.
        source: the real-data source.
        model: the model family.
        guided: the family with its sampling guidance (what the loop fits and samples).
    """

    start: Callable
    step: Callable
    names: tuple[str, ...]
    source: DataSource
    model: GenerativeModel
    guided: Guided


def make_loop(cfg: C.Config) -> Loop:
    """Builds generation 0 and the generation step for a validated config."""
    source = make_source(cfg.data)
    model = make_model(cfg.model, source.shape)
    guided = make_guidance(cfg.guidance, model, source)
    curation = make_curation(cfg.curation, source)
    dim = source.dim
    # A class-conditional family trains on [x, label] rows: the real data carries the truth's labels in a last
    # column, which pools and regimes move along with the samples; metrics and snapshots see x only.
    train_source = (
        source._replace(sample=_labeled_rows(source.sample_labeled), dim=dim + 1)
        if getattr(cfg.model, "classes", 0)
        else source
    )
    regime, g_total = cfg.regime, cfg.loop.generations
    names = M.selected_metrics(cfg)
    snap_gens = jnp.asarray(snapshot_generations(cfg))
    n_draw = max(cfg.eval.n if M.needs_samples(names) else 0, cfg.eval.snapshot_n)
    # An accumulating pool kept as the family's sufficient statistics (loop.stats_pool): no pool buffer, and
    # generation 0's training set is the real set alone.
    by_stats = stats_pool(cfg, model)
    t_slots = regime.n_real if by_stats else R.train_size(regime, g_total)
    # Generation 0 and later generations share the training-set size (a KDE's parameters are its rows).
    t_slots = max(t_slots, C.initial_size(regime))

    def evaluate(run_key, g, params, knobs, ref, snapshots):
        metrics = M.params_metrics(names, guided.base(params), model, source, ref)

        def draw(n: int) -> jax.Array:
            return guided.sample(role_key(run_key, g, EVAL), params, n, knobs)[:, :dim]

        hit = snap_gens == g
        slot = jnp.argmax(hit)
        old = jax.lax.dynamic_index_in_dim(snapshots, slot, keepdims=False)
        if M.needs_samples(names):
            samples = draw(n_draw)
            metrics.update(M.sample_metrics(names, samples[: cfg.eval.n], ref, cfg.eval, source))
            if "reward" in names:  # the model's expected reward under the curation's reward (uncurated samples)
                metrics["reward"] = jnp.mean(curation.reward(samples[: cfg.eval.n]))
            new = jnp.where(jnp.any(hit), samples[: cfg.eval.snapshot_n], old)
        else:  # parameter metrics only: draw (the same samples) at snapshot generations alone
            new = jax.lax.cond(jnp.any(hit), lambda: draw(n_draw)[: cfg.eval.snapshot_n], lambda: old)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        # Columns in the order eval.metrics names them; NaN wherever the parameters are not finite.
        metrics = {k: jnp.where(finite, jnp.asarray(metrics[k], float_dtype()), jnp.nan) for k in names}
        # Keep this generation's samples if it is a snapshot generation (one slot update, no full select).
        snapshots = jax.lax.dynamic_update_index_in_dim(snapshots, new, slot, 0)
        return Row(metrics, finite.astype(float_dtype())), snapshots

    def fit(run_key, g, params, x, w, warm: bool):
        if not warm:
            params = guided.init(role_key(run_key, g, INIT), x, w)
        return guided.fit(role_key(run_key, g, FIT), params, x, w, warm)

    def start(run_key: Key, knobs: Knobs, ref: M.Reference) -> tuple[LoopState, Row]:
        if regime.n_initial is None:
            real = train_source.sample(role_key(run_key, 0, REAL), regime.n_real)
            # Generation 0: the real set (its first knobs.n_real samples) padded to the training-set size T.
            x, w = R.pad(real, R.count_mask(regime.n_real, knobs.n_real), t_slots)
        else:  # generation 0 fits n_initial real samples: the real set cut, or extended by further draws
            n0 = regime.n_initial
            if n0 > regime.n_real and source.size is not None:  # a finite data set: one draw without replacement
                first = train_source.sample(role_key(run_key, 0, REAL), n0)
                real = first[: regime.n_real]
            else:  # the same real set as without n_initial (common random numbers), plus independent extra draws
                real = train_source.sample(role_key(run_key, 0, REAL), regime.n_real)
                first = real
                if n0 > regime.n_real:
                    extra = train_source.sample(role_key(run_key, 0, INITIAL), n0 - regime.n_real)
                    first = jnp.concatenate([real, extra])
            x, w = R.pad(first[:n0], jnp.ones((n0,), first.dtype), t_slots)
        d = real.shape[1]
        if by_stats:
            pool, pool_w = model.stats(jnp.zeros((0, d), real.dtype), jnp.zeros((0,), real.dtype)), jnp.zeros((0,))
        else:
            pool, pool_w = R.empty_pool(regime, g_total, d)
        params = fit(run_key, 0, None, x, w, warm=False)
        snapshots = jnp.zeros((snap_gens.shape[0], cfg.eval.snapshot_n, dim), real.dtype)
        row, snapshots = evaluate(run_key, 0, params, knobs, ref, snapshots)
        return LoopState(params, real, pool, pool_w, snapshots), row

    def step(run_key: Key, knobs: Knobs, ref: M.Reference, state: LoopState, g: jax.Array):
        # 1. Generation g - 1 produces the synthetic samples (with sampling bias) that enter the pool; a curation
        # keeps one of every k (k = 1 without curation).
        synth = guided.sample(role_key(run_key, g, SYNTH), state.params, curation.k * regime.n_synth, knobs)
        synth = curation.select(role_key(run_key, g, CURATE), synth, knobs.temperature)
        x_real, w_real = R.real_part(regime, role_key(run_key, g, REAL), state.real, train_source)
        w_real = w_real * R.count_mask(w_real.shape[0], knobs.n_real)
        if by_stats:  # 2'-3'. The pool's statistics absorb the new samples; fit on real + pool statistics.
            pool = model.merge(state.pool, model.stats(synth, R.count_mask(regime.n_synth, knobs.n_synth)))
            pool_w = state.pool_w
            params = model.fit_stats(R.training_stats(model, x_real, w_real, pool, knobs.real_weight))
        else:
            pool, pool_w = R.add_to_pool(regime, state.pool, state.pool_w, synth, g, knobs.n_synth)
            # 2. The training set: the regime's real part and the pool policy's synthetic part.
            x_syn, w_syn = R.synthetic_part(regime, role_key(run_key, g, SUBSAMPLE), pool, pool_w, knobs.n_synth)
            x, w = R.training_set(x_real, w_real, x_syn, w_syn, knobs.real_weight, t_slots)
            # 3. Fit generation g (warm start from g - 1, or from scratch).
            params = fit(run_key, g, state.params, x, w, warm=cfg.loop.warm_start)
        row, snapshots = evaluate(run_key, g, params, knobs, ref, state.snapshots)
        return LoopState(params, state.real, pool, pool_w, snapshots), row

    return Loop(start, step, names, source, model, guided)


def stats_pool(cfg: C.Config, model: GenerativeModel) -> bool:
    """Whether the loop keeps its synthetic pool as the family's sufficient statistics: ``loop.stats_pool``, an
    ``accumulate`` pool, a family with statistics and no guidance (SIMS fits an auxiliary model on samples)."""
    return (
        cfg.loop.stats_pool
        and cfg.regime.pool == "accumulate"
        and model.stats is not None
        and isinstance(cfg.guidance, C.NoGuidance)
    )


def _labeled_rows(sample_labeled: Callable) -> Callable:
    """``sample(key, n) -> [n, d + 1]``: a labelled source's samples with their label as a last (float) column."""

    def sample(key: Key, n: int) -> jax.Array:
        x, y = sample_labeled(key, n)
        return jnp.concatenate([x, y[:, None].astype(x.dtype)], axis=1)

    return sample


def scan_generations(
    loop: Loop, length: int, run_key: Key, knobs: Knobs, ref: M.Reference, state: LoopState, first: jax.Array
) -> tuple[LoopState, Row]:
    """Runs generations first .. first + length - 1 as one lax.scan; rows are stacked [length]."""

    def body(state, g):
        return loop.step(run_key, knobs, ref, state, g)

    return jax.lax.scan(body, state, first + jnp.arange(length))


def run_all(loop: Loop, generations: int, run_key: Key, knobs: Knobs, ref: M.Reference):
    """The whole loop for one seed as one function: generation 0, then a scan over 1..G. Rows [G + 1]."""
    state, row0 = loop.start(run_key, knobs, ref)
    state, rows = scan_generations(loop, generations, run_key, knobs, ref, state, jnp.int32(1))
    return state, jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), row0, rows)


def auto_chunk(generations: int, updates: int = 20) -> int:
    """The largest divisor of G that is at most ceil(G / updates), so every chunk compiles to one program."""
    target = max(1, -(-generations // updates))
    return max(c for c in range(1, target + 1) if generations % c == 0)


class Result(NamedTuple):
    """Everything one experiment returns (numpy arrays, runs first).

    A run is one (knob grid point, seed) pair: B = K x S runs, knob-major (run b has seed b % S). Without a
    sweep K = 1 and runs are seeds.

    Attributes:
        names: metric names in column order.
        metrics: {name: [B, G + 1]}.
        finite: [B, G + 1] 1 where the generation's parameters are finite.
        snapshots: [B, n_snap, m, d] model samples at ``snapshot_generations``.
        snapshot_generations: [n_snap].
        heldout: [n, d] the held-out real set.
        state: the final LoopState (batched over runs).
        seconds: wall time of the run, compilation included.
        seed: [B] each run's seed index.
        knobs: {swept knob: [B]} each run's value (empty without a sweep).
        resumed: the generation the run resumed from (a checkpoint), or None.
    """

    names: tuple[str, ...]
    metrics: dict[str, np.ndarray]
    finite: np.ndarray
    snapshots: np.ndarray
    snapshot_generations: np.ndarray
    heldout: np.ndarray
    state: LoopState
    seconds: float
    seed: np.ndarray
    knobs: dict[str, np.ndarray]
    resumed: int | None = None

    def divergence(self) -> str | None:
        """A one-line warning when some runs (seed x knob grid point) have non-finite parameters, else None."""
        bad = self.finite.min(axis=1) < 1
        if not bad.any():
            return None
        first = int(np.argmax(self.finite.min(axis=0) < 1))
        return (
            f"{int(bad.sum())} of {len(bad)} runs have non-finite parameters (first at generation {first}): "
            "their rows have finite=0 and NaN metrics, and the figures leave them out"
        )

    def table(self) -> pd.DataFrame:
        """Tidy table: one row per (run, generation); columns seed, swept knobs..., generation, metrics..., finite."""
        b, g1 = self.finite.shape
        cols = {"seed": np.repeat(self.seed, g1)}
        cols.update({k: np.repeat(v, g1) for k, v in self.knobs.items()})
        cols["generation"] = np.tile(np.arange(g1), b)
        cols.update({k: self.metrics[k].reshape(-1).astype(np.float64) for k in self.names})
        cols["finite"] = self.finite.reshape(-1).astype(np.int64)
        import pandas as pd

        return pd.DataFrame(cols)


def static_config(cfg: C.Config) -> C.Config:
    """The config with its traced values (bias.lam, regime.real_weight, guidance.omega, curation.temperature,
    loop.seed) and output switches set to fixed values: configs that agree here run the same compiled programs."""
    fixed = dataclasses.replace(
        cfg,
        bias=dataclasses.replace(cfg.bias, lam=1.0),
        regime=dataclasses.replace(cfg.regime, real_weight=1.0),
        loop=dataclasses.replace(cfg.loop, seed=0, checkpoint=False),
        plots=True,
    )
    if hasattr(cfg.guidance, "omega"):
        fixed = dataclasses.replace(fixed, guidance=dataclasses.replace(cfg.guidance, omega=0.0))
    if hasattr(cfg.curation, "temperature"):
        fixed = dataclasses.replace(fixed, curation=dataclasses.replace(cfg.curation, temperature=1.0))
    return fixed


class Programs:
    """The compiled programs of one static config, shared by every config that differs only in traced values
    (so a Hydra sweep over bias.lam in one process compiles once)."""

    def __init__(self, cfg: C.Config):
        with precision(cfg.loop.precision):  # the source's truth and the evaluator's constants
            self._build(cfg)

    def _build(self, cfg: C.Config) -> None:
        self.loop = make_loop(cfg)
        runs_axis = (0, 0, None)
        self.start = jax.jit(jax.vmap(self.loop.start, in_axes=runs_axis))
        run = functools.partial(run_all, self.loop, cfg.loop.generations)
        self.run_all = jax.jit(jax.vmap(run, in_axes=runs_axis))
        self.chunks: dict[int, Callable] = {}
        ev, source, names = cfg.eval, self.loop.source, self.loop.names
        # The held-out set and the statistics the selected metrics read, as one program of (held-out key,
        # projection key).

        # An image source's feature classifier (trained, or loaded from its disk cache, here: before any loop
        # program runs) when a selected metric reads it.
        reads = any(m in M.FEATURE_METRICS or M.reads_classes(m) for m in names)
        classifier = source.classifier() if source.classifier is not None and reads else None

        def reference(k_heldout: Key, k_proj: Key) -> M.Reference:
            # A finite data set evaluates against its fixed held-out images; a distribution against fresh draws.
            heldout = source.heldout if source.heldout is not None else source.sample(k_heldout, ev.n)
            return M.make_reference(k_proj, heldout, ev.k, ev.projections, names, classifier)

        self.reference = jax.jit(reference)
        self.references: dict[int, M.Reference] = {}  # per loop.seed: the held-out set and its statistics

    def chunk_fn(self, length: int) -> Callable:
        """The compiled scan over ``length`` generations (one program per distinct length)."""
        if length not in self.chunks:
            fn = functools.partial(scan_generations, self.loop, length)
            self.chunks[length] = jax.jit(jax.vmap(fn, in_axes=(0, 0, None, 0, None)))
        return self.chunks[length]


def _in_precision(method: Callable) -> Callable:
    """Runs a Simulation method in its config's ``loop.precision`` (JAX's x64 mode for float64, for this call)."""

    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        with precision(self.cfg.loop.precision):
            return method(self, *args, **kwargs)

    return wrapped


class Simulation:
    """A compiled experiment: jit(vmap(...)) over runs (knob grid x seeds), built once per config; calling it
    again reuses it. The run axis is sharded over all local devices (one code path for 1 CPU or 8 GPUs).

    Args:
        cfg: a validated config.
        programs: compiled programs to reuse (built for ``static_config(cfg)``); built anew when None.
    """

    def __init__(self, cfg: C.Config, programs: Programs | None = None):
        self.cfg = cfg
        self.programs = programs if programs is not None else Programs(cfg)
        self.loop = self.programs.loop
        g = cfg.loop.generations
        self.chunk = min(cfg.loop.chunk or auto_chunk(g), g)
        programs = self.programs
        self._start, self._run_all, self._reference = programs.start, programs.run_all, programs.reference

    def chunk_fn(self, length: int) -> Callable:
        """The compiled scan over ``length`` generations (one program per distinct length)."""
        return self.programs.chunk_fn(length)

    @_in_precision
    def runs(self) -> tuple[Key, Knobs, np.ndarray, dict[str, np.ndarray]]:
        """The batch of runs, knob-major: (run keys [B], knobs [B], seed index [B], swept columns {name: [B]}).

        Every grid point uses the same S seed keys (common random numbers across knob values).
        """
        grid, columns = knob_grid(self.cfg)
        k, s = grid.lam.shape[0], self.cfg.loop.seeds
        keys = _run_keys(jnp.uint32(self.cfg.loop.seed), s, k)[0]
        knobs = Knobs(*(jnp.asarray(np.repeat(np.asarray(v), s)) for v in grid))
        seed = np.tile(np.arange(s), k)
        return keys, knobs, seed, {name: np.repeat(v, s) for name, v in columns.items()}

    @_in_precision
    def keys(self) -> tuple[Key, Key, Key]:
        """(run keys [S], held-out key, projection key), all derived from key(loop.seed)."""
        return _run_keys(jnp.uint32(self.cfg.loop.seed), self.cfg.loop.seeds, 1)

    @_in_precision
    def reference(self) -> M.Reference:
        """The held-out real set (shared by all seeds) and its statistics; computed once per ``loop.seed`` and
        kept with the compiled programs (it took 0.18 s of a 0.23 s call of a small Gaussian run)."""
        seed = self.cfg.loop.seed
        if seed not in self.programs.references:
            _, k_heldout, k_proj = self.keys()
            ref = self._reference(k_heldout, k_proj)
            self.programs.references[seed] = ref
        return self.programs.references[seed]

    @_in_precision
    def abstract_rows(self, b: int) -> Row:
        """Shapes of the table rows of ``b`` runs: metrics {name: [b, G + 1]} and finite [b, G + 1]."""
        shape = jax.ShapeDtypeStruct((b, self.cfg.loop.generations + 1), float_dtype())
        return Row({k: shape for k in self.loop.names}, shape)

    @_in_precision
    def __call__(
        self,
        progress: Callable[[int, int, float], None] | None = None,
        checkpoint: str | Path | None = None,
    ) -> Result:
        """Runs every seed for G generations.

        Args:
            progress: called as ``progress(done, total, seconds)`` after generation 0 and after every chunk
                (once at the end when the whole loop is one program).
            checkpoint: a folder for per-chunk checkpoints (``madloop.checkpoint``). The run resumes from the
                last checkpoint found there, with results identical to an uninterrupted run; it steps in chunks
                even when ``loop.chunk`` would run one program.
        """
        t0 = time.perf_counter()
        cfg, g_total = self.cfg, self.cfg.loop.generations
        run_keys, knobs, seed, columns = self.runs()
        ref = self.reference()
        b = seed.shape[0]
        run_keys, knobs = shard_runs((run_keys, knobs))

        def tell(done: int) -> None:
            if progress is not None:
                progress(done, g_total, time.perf_counter() - t0)

        ckpt = None if checkpoint is None else Checkpointer(checkpoint, cfg)
        resumed = None
        if ckpt is None and self.chunk >= g_total:  # the whole run as one program
            state, rows = self._run_all(run_keys, knobs, ref)
            rows = jax.tree.map(lambda a: np.asarray(a)[:b], rows)
            tell(g_total)
        else:
            unpad = functools.partial(jax.tree.map, lambda a: a[:b])
            restored = None
            if ckpt is not None:
                state_shape = jax.eval_shape(self._start, run_keys, knobs, ref)[0]
                state_shape = jax.tree.map(lambda s: jax.ShapeDtypeStruct((b, *s.shape[1:]), s.dtype), state_shape)
                restored = ckpt.restore((state_shape, self.abstract_rows(b)))
            if restored is None:
                state, row0 = self._start(run_keys, knobs, ref)
                rows = jax.tree.map(lambda s: np.full(s.shape, np.nan, s.dtype), self.abstract_rows(b))
                _put_rows(rows, row0, 0, b)
                done = 0
                if ckpt is not None:
                    ckpt.save(0, (unpad(state), rows))
            else:
                (state, rows), done = restored
                resumed = done
                state = shard_runs(jax.tree.map(jnp.asarray, state))
            tell(done)
            while done < g_total:
                length = min(self.chunk, g_total - done)
                state, chunk_rows = self.chunk_fn(length)(run_keys, knobs, ref, state, jnp.int32(done + 1))
                _put_rows(rows, chunk_rows, done + 1, b)
                done += length
                if ckpt is not None:
                    ckpt.save(done, (unpad(state), rows))
                tell(done)
        state = jax.tree.map(lambda a: a[:b], state)  # drop the runs padded for an even split over devices
        return Result(
            names=self.loop.names,
            metrics=rows.metrics,
            finite=rows.finite,
            snapshots=np.asarray(state.snapshots),
            snapshot_generations=snapshot_generations(cfg),
            heldout=np.asarray(ref.heldout),
            state=state,
            seconds=time.perf_counter() - t0,
            seed=seed,
            knobs=columns,
            resumed=resumed,
        )


@functools.partial(jax.jit, static_argnums=(1, 2))
def _run_keys(seed: jax.Array, seeds: int, repeats: int) -> tuple[Key, Key, Key]:
    """(run keys [repeats * seeds]: the S seed keys tiled ``repeats`` times, held-out key, projection key), all
    derived from key(seed), as one compiled program (built from eager ops they cost 0.3 s of compilation)."""
    base = jax.random.key(seed)
    run_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.fold_in(base, _SEEDS), jnp.arange(seeds))
    tiled = jax.random.wrap_key_data(jnp.tile(jax.random.key_data(run_keys), (repeats, 1)))
    return tiled, jax.random.fold_in(base, _HELDOUT), jax.random.fold_in(base, _PROJECTIONS)


def _put_rows(rows: Row, new: Row, first: int, b: int) -> None:
    """Copies rows of generations first.. (new: [B] for one generation or [B, L] for a chunk) into the table
    buffers rows [b, G + 1], dropping padded runs."""

    def put(buf, a):
        a = np.asarray(a)[:b]
        a = a[:, None] if a.ndim == 1 else a
        buf[:, first : first + a.shape[1]] = a

    jax.tree.map(put, rows, new)


def shard_runs(tree):
    """Places a batch of runs (leading axis B) across all local devices: the axis is padded to a multiple of the
    device count (by repeating the last run; callers drop the padding) and sharded with a 1-D mesh. On one device
    this returns the tree unchanged, so one code path serves a CPU, 8 GPUs or a TPU slice."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return tree
    b = jax.tree.leaves(tree)[0].shape[0]
    pad = -b % len(devices)
    if pad:
        tree = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), tree)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("runs",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("runs"))
    return jax.device_put(tree, sharding)


_CACHE: OrderedDict[str, Programs] = OrderedDict()
_CACHE_SIZE = 16


def simulation(cfg: C.Config) -> Simulation:
    """The Simulation for a config, reusing the compiled programs of any earlier config that differs only in
    traced values (bias.lam, regime.real_weight, guidance.omega, curation.temperature, loop.seed): no
    recompilation.

    The programs of the 16 most recently used static configs are kept (a notebook sweeping configs does not
    grow without bound).
    """
    key = repr(static_config(cfg))
    if key in _CACHE:
        _CACHE.move_to_end(key)
    else:
        _CACHE[key] = Programs(cfg)
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return Simulation(cfg, _CACHE[key])
