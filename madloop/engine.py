"""The engine: compiled programs over runs (knob grid x seeds), chunking and progress, sharding, checkpoints, and
the Result with its tidy table. The generation step itself is ``madloop.loop``.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import _xla
from madloop import config as C
from madloop import metrics as M
from madloop.checkpoint import Checkpointer
from madloop.knobs import knob_grid, static_config
from madloop.loop import (
    Loop,
    Row,
    evaluated_generations,
    make_floors,
    make_loop,
    scan_generations,
    snapshot_generations,
)
from madloop.parts import parts_of
from madloop.precision import float_dtype, on_device, precision
from madloop.rng import fold_in_np
from madloop.types import Key, Knobs, LoopState

if TYPE_CHECKING:
    import pandas as pd  # imported where a table is built (0.45 s of start-up otherwise)

# Run-level streams derived from the base key key(loop.seed).
_SEEDS, _HELDOUT, _PROJECTIONS = range(3)


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
        metrics: {name: [B, E]}: each evaluated generation's metrics (E = G + 1 by default).
        finite: [B, E] 1 where the generation's parameters (and the evaluation samples its sample metrics read)
            are finite.
        snapshots: [B, n_snap, m, d] model samples at ``snapshot_generations``.
        snapshot_generations: [n_snap].
        heldout: [n, d] the held-out real set.
        state: the final LoopState (batched over runs).
        seconds: wall time of the run, compilation included.
        seed: [B] each run's seed index.
        knobs: {swept knob: [B]} each run's value (empty without a sweep).
        resumed: the generation the run resumed from (a checkpoint), or None.
        generations: [E] the evaluated generations, the columns of ``metrics`` and ``finite``: 0..G, or with
            ``eval.every`` > 1 every every-th generation and G (``madloop.loop.evaluated_generations``).
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
    generations: np.ndarray | None = None

    def divergence(self) -> str | None:
        """A one-line warning when some runs (seed x knob grid point) have non-finite parameters, else None."""
        bad = self.finite.min(axis=1) < 1
        if not bad.any():
            return None
        first = int(self._generations()[np.argmax(self.finite.min(axis=0) < 1)])
        return (
            f"{int(bad.sum())} of {len(bad)} runs have non-finite parameters or samples (first at generation {first}): "
            "their rows have finite=0 and NaN metrics, and the figures leave them out"
        )

    def _generations(self) -> np.ndarray:
        return np.arange(self.finite.shape[1]) if self.generations is None else self.generations

    def table(self) -> pd.DataFrame:
        """Tidy table: one row per (run, generation); columns seed, swept knobs..., generation, metrics..., finite."""
        b, g1 = self.finite.shape
        cols = {"seed": np.repeat(self.seed, g1)}
        cols.update({k: np.repeat(v, g1) for k, v in self.knobs.items()})
        cols["generation"] = np.tile(self._generations().astype(np.int64), b)
        cols.update({k: self.metrics[k].reshape(-1).astype(np.float64) for k in self.names})
        cols["finite"] = self.finite.reshape(-1).astype(np.int64)
        import pandas as pd

        return pd.DataFrame(cols)


def parameter_path_run(loop: Loop, generations: int, run_key: Key, knobs: Knobs, ref: M.Reference):
    """One run's (params, metrics), each stacked over generations 0..G (``loop.generation`` from ``loop.blank``)."""

    def body(state, g):
        state, row = loop.generation(run_key, knobs, ref, state, g)
        return state, (state.params, row.metrics)

    blank = loop.blank(run_key, knobs)
    return jax.lax.scan(body, blank, jnp.arange(generations + 1, dtype=jnp.int32))[1]


class Programs:
    """The compiled programs of one static config, shared by every config that differs only in traced values
    (so a Hydra sweep over bias.lam in one process compiles once)."""

    def __init__(self, cfg: C.Config):
        with precision(cfg.loop.precision):  # the source's truth and the evaluator's constants
            self._build(cfg)

    def _build(self, cfg: C.Config) -> None:
        self.parts = parts_of(cfg)
        self.loop: Loop = make_loop(cfg, self.parts)
        self.chunks: dict[int, Callable] = {}
        # YNNPACK's reductions where the programs compute pairwise sample metrics (madloop._xla: their [n, n] sums)
        self.options = _xla.program_options(M.needs_pairwise(self.loop.names))
        self._path: Callable | None = None
        self._generations = cfg.loop.generations
        ev, source, names, ctx = cfg.eval, self.parts.source, self.loop.names, self.parts.context

        # The held-out set and the statistics the selected metrics read, as one program of (held-out key,
        # projection key). (An image source's feature classifier is trained, or loaded from its disk cache, when
        # the program is traced: before any loop program runs.)
        # A finite data set's fixed held-out images are an argument, not a constant of the program: XLA folded the
        # feature classifier over constant images at compile time (a digits run's reference compiled in 2.2 s in
        # float32 and 27 s in float64; about 0.3 s as an argument).
        def reference(k_heldout: Key, k_proj: Key, fixed: jax.Array | None) -> M.Reference:
            # A finite data set evaluates against its fixed held-out images; a distribution against fresh draws.
            heldout = fixed if fixed is not None else source.sample(k_heldout, ev.n)
            return M.make_reference(k_proj, heldout, ctx, names)

        points = source.heldout.shape[0] if source.heldout is not None else ev.n
        # compiled for compile speed: it runs once (madloop._xla.one_shot_options)
        # (held-out key, projection key, fixed_heldout) -> the reference
        self.reference = jax.jit(reference, compiler_options=_xla.one_shot_options(self.options, points))
        self.fixed_heldout = source.heldout
        self.references: dict[int, M.Reference] = {}  # per loop.seed: the held-out set and its statistics
        floors = make_floors(cfg, self.parts)
        self.floors = (
            None if floors is None else jax.jit(jax.vmap(floors, in_axes=(0, None)), compiler_options=self.options)
        )

    def chunk_fn(self, length: int) -> Callable:
        """The compiled loop over up to ``length`` generations: ``(run keys, knobs, reference, state, first, count)
        -> (state, rows [B, length])`` runs generations first..first + count - 1 (count <= length), generation 0
        included; one program per distinct ``length``."""
        if length not in self.chunks:
            fn = functools.partial(scan_generations, self.loop, length)
            self.chunks[length] = jax.jit(fn, compiler_options=self.options)
        return self.chunks[length]

    def state_shapes(self, run_keys: Key, knobs: Knobs) -> LoopState:
        """The loop state's shapes for a batch of runs [B, ...] (``jax.ShapeDtypeStruct`` leaves; nothing runs)."""
        per_run = jax.eval_shape(
            self.loop.blank,
            jax.ShapeDtypeStruct(run_keys.shape[1:], run_keys.dtype),
            {k: jax.ShapeDtypeStruct(v.shape[1:], v.dtype) for k, v in knobs.items()},
        )
        b = run_keys.shape[0]
        return jax.tree.map(lambda s: jax.ShapeDtypeStruct((b, *s.shape), s.dtype), per_run)

    def blank(self, run_keys: Key, knobs: Knobs) -> LoopState:
        """The state generation 0 starts from for a batch of runs: zeros of the loop state's shapes, sharded as the
        runs are (made in numpy: no program is compiled for it; as device arrays, as the programs' outputs are,
        so both reuse one entry of the program's cache)."""
        zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), self.state_shapes(run_keys, knobs))
        if len(jax.local_devices()) > 1:  # placed straight onto their shards (no full batch on one device)
            return shard_runs(zeros)
        return jax.device_put(zeros)

    def path_fn(self) -> Callable:
        """The compiled program of ``madloop.parameter_path``: (run keys, knobs, reference) -> (params, metrics),
        each stacked over generations 0..G (built on first use)."""
        if self._path is None:
            self._path = jax.jit(
                jax.vmap(functools.partial(parameter_path_run, self.loop, self._generations), in_axes=(0, 0, None)),
                compiler_options=self.options,
            )
        return self._path


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
        self._reference = self.programs.reference
        self._fixed_heldout = self.programs.fixed_heldout

    def chunk_fn(self, length: int) -> Callable:
        """The compiled loop over up to ``length`` generations (``Programs.chunk_fn``)."""
        return self.programs.chunk_fn(length)

    def run_all(self, run_keys: Key, knobs: Knobs, ref: M.Reference) -> tuple[LoopState, Row]:
        """Generations 0..G of a batch of runs as one call of one program: (final state, rows [B, G + 1])."""
        g = self.cfg.loop.generations
        return self.chunk_fn(g + 1)(run_keys, knobs, ref, self.programs.blank(run_keys, knobs), 0, g + 1)

    @_in_precision
    def runs(self) -> tuple[Key, Knobs, np.ndarray, dict[str, np.ndarray]]:
        """The batch of runs, knob-major: (run keys [B], knobs [B], seed index [B], swept columns {name: [B]}).

        Every grid point uses the same S seed keys (common random numbers across knob values).
        """
        grid, columns = knob_grid(self.cfg)
        k, s = grid["lam"].shape[0], self.cfg.loop.seeds
        keys = _run_keys(self.cfg.loop.seed, s, k)[0]
        knobs = {name: on_device(np.repeat(np.asarray(v), s)) for name, v in grid.items()}
        seed = np.tile(np.arange(s), k)
        return keys, knobs, seed, {name: np.repeat(v, s) for name, v in columns.items()}

    @_in_precision
    def keys(self) -> tuple[Key, Key, Key]:
        """(run keys [S], held-out key, projection key), all derived from key(loop.seed)."""
        return _run_keys(self.cfg.loop.seed, self.cfg.loop.seeds, 1)

    @_in_precision
    def reference(self) -> M.Reference:
        """The held-out real set (shared by all seeds) and its statistics; computed once per ``loop.seed`` and
        kept with the compiled programs (it took 0.18 s of a 0.23 s call of a small Gaussian run)."""
        seed = self.cfg.loop.seed
        if seed not in self.programs.references:
            _, k_heldout, k_proj = self.keys()
            ref = self._reference(k_heldout, k_proj, self._fixed_heldout)
            self.programs.references[seed] = ref
        return self.programs.references[seed]

    def _reference_ahead(self) -> tuple[Callable[..., M.Reference | None], M.Reference | None]:
        """The reference, started ahead of the loop's compilation: (a function that returns it, its shapes when it
        is being built in a worker thread, else None).

        A first call compiles two programs, the reference and the loop, and XLA compiles each on one core. When
        the reference is not cached yet (and the runs sit on one device), its program is traced here, then
        compiled and run in a worker thread while ``__call__`` compiles the loop's program against its shapes;
        both land in JAX's compilation cache, so nothing compiles twice. The gain is smaller than the reference's
        2.3-2.9 s of compilation: the loop's trace slows beside it (1.0 -> 1.5 s), and a fresh process's first
        call of the default experiment went 16.8-17.4 -> 16.6-16.7 s (3 interleaved pairs, 2 cores, 2026-11-27).
        Must be called in the config's precision (``__call__`` is)."""
        seed = self.cfg.loop.seed
        if seed in self.programs.references or len(jax.local_devices()) > 1:
            return (lambda settle=False: None if settle else self.reference()), None
        _, k_heldout, k_proj = self.keys()
        fixed = self._fixed_heldout
        lowered = self._reference.lower(k_heldout, k_proj, fixed)  # the trace, in this thread
        out: dict[str, object] = {}

        def build() -> None:
            try:
                with precision(self.cfg.loop.precision):
                    out["ref"] = lowered.compile()(k_heldout, k_proj, fixed)
            except BaseException as e:  # noqa: BLE001  (re-raised in the caller's thread)
                out["error"] = e

        worker = threading.Thread(target=build, name="madloop-reference", daemon=True)
        worker.start()

        def get(settle: bool = False) -> M.Reference | None:
            """The reference (the worker's error re-raised); ``settle=True``: waits for the worker and returns None
            (a caller that failed meanwhile: no thread is left inside XLA when the interpreter exits)."""
            worker.join()
            if settle:
                return None
            if "error" in out:
                raise out["error"]  # type: ignore[misc]
            self.programs.references[seed] = out["ref"]  # type: ignore[assignment]
            return self.programs.references[seed]

        return get, lowered.out_info

    @_in_precision
    def floors(self) -> pd.DataFrame | None:
        """The real-vs-real floor of every sample metric at the run's sample size: one row per seed (columns
        ``seed`` and the sample metrics), each seed scoring ``eval.n`` fresh real samples against the held-out
        reference; None when the run computes no sample metric. A separate small program (not part of the loop's),
        so a run pays for it only when asked (``madloop.run`` writes it as floors.csv)."""
        if self.programs.floors is None:
            return None
        run_keys = self.keys()[0]
        out = self.programs.floors(run_keys, self.reference())
        import pandas as pd

        table = {"seed": np.arange(self.cfg.loop.seeds)}
        return pd.DataFrame(table | {k: np.asarray(out[k], np.float64) for k in self.loop.names if k in out})

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
        on_rows: Callable[[np.ndarray, Row], None] | None = None,
    ) -> Result:
        """Runs every seed for G generations.

        Args:
            progress: called as ``progress(done, total, seconds)`` after generation 0 and after every chunk
                (once at the end when the whole loop is one program).
            checkpoint: a folder for per-chunk checkpoints (``madloop.checkpoint``). The run resumes from the
                last checkpoint found there, with results identical to an uninterrupted run; it steps in chunks
                even when ``loop.chunk`` would run one program.
            on_rows: called as ``on_rows(generations [L], rows)`` with each new batch of evaluated rows (metrics
                {name: [B, L]}, finite [B, L]) as it arrives: generation 0, then each chunk (an experiment
                tracker's live curves); rows restored from a checkpoint are passed once, on resuming.
        """
        t0 = time.perf_counter()
        run_keys, knobs, seed, columns = self.runs()
        get_ref, ref_shapes = self._reference_ahead()
        try:
            return self._run(t0, run_keys, knobs, seed, columns, get_ref, ref_shapes, progress, checkpoint, on_rows)
        except BaseException:
            get_ref(settle=True)  # no worker left inside XLA (its result is not kept)
            raise

    def _run(
        self,
        t0: float,
        run_keys: Key,
        knobs: Knobs,
        seed: np.ndarray,
        columns: dict[str, np.ndarray],
        get_ref: Callable[..., M.Reference | None],
        ref_shapes: M.Reference | None,
        progress: Callable[[int, int, float], None] | None,
        checkpoint: str | Path | None,
        on_rows: Callable[[np.ndarray, Row], None] | None,
    ) -> Result:
        """``__call__``'s work once the runs are drawn and the reference is started (``_reference_ahead``)."""
        cfg, g_total = self.cfg, self.cfg.loop.generations
        b = seed.shape[0]
        run_keys, knobs = shard_runs((run_keys, knobs))

        def first_call(program: Callable, state: LoopState, count: int) -> tuple[LoopState, Row]:
            """program(..., state, 0, count), compiled while the reference is built in its worker thread."""
            if ref_shapes is not None:
                program.lower(run_keys, knobs, ref_shapes, state, 0, count).compile()
            return program(run_keys, knobs, get_ref(), state, 0, count)

        evaluated = evaluated_generations(cfg)
        told = [0]  # generations passed to on_rows so far

        def tell(done: int) -> None:
            if on_rows is not None and done + 1 > told[0]:
                gens = evaluated[(evaluated >= told[0]) & (evaluated <= done)]
                if len(gens):
                    on_rows(gens, jax.tree.map(lambda a: np.asarray(a)[:, gens], rows))
                told[0] = done + 1
            if progress is not None:
                progress(done, g_total, time.perf_counter() - t0)

        ckpt = None if checkpoint is None else Checkpointer(checkpoint, cfg)
        resumed = None
        if ckpt is None and self.chunk >= g_total:  # the whole run as one call
            state, rows = first_call(self.chunk_fn(g_total + 1), self.programs.blank(run_keys, knobs), g_total + 1)
            rows = jax.tree.map(lambda a: np.asarray(a)[:b], rows)
            tell(g_total)
        else:
            unpad = functools.partial(jax.tree.map, lambda a: a[:b])
            program = self.chunk_fn(self.chunk)  # generation 0 alone, then every chunk: one program
            restored = None
            if ckpt is not None:
                shapes = self.programs.state_shapes(run_keys, knobs)
                state_shape = jax.tree.map(lambda a: jax.ShapeDtypeStruct((b, *a.shape[1:]), a.dtype), shapes)
                restored = ckpt.restore((state_shape, self.abstract_rows(b)))
            if restored is None:
                state, row0 = first_call(program, self.programs.blank(run_keys, knobs), 1)
                rows = jax.tree.map(lambda s: np.full(s.shape, np.nan, s.dtype), self.abstract_rows(b))
                _put_rows(rows, row0, 0, b, 1)
                done = 0
                if ckpt is not None:
                    ckpt.save(0, (unpad(state), rows))
            else:
                (state, rows), done = restored
                resumed = done
                state = shard_runs(jax.tree.map(jnp.asarray, state))
            ref = get_ref()  # (before the callbacks: a failed reference tells nothing)
            tell(done)
            while done < g_total:
                length = min(self.chunk, g_total - done)
                state, chunk_rows = program(run_keys, knobs, ref, state, done + 1, length)
                _put_rows(rows, chunk_rows, done + 1, b, length)
                done += length
                if ckpt is not None:
                    ckpt.save(done, (unpad(state), rows))
                tell(done)
        state = jax.tree.map(lambda a: a[:b], state)  # drop the runs padded for an even split over devices
        gens = evaluated
        if len(gens) < g_total + 1:  # eval.every > 1: only the evaluated generations' columns
            rows = jax.tree.map(lambda a: np.asarray(a)[:, gens], rows)
        return Result(
            names=self.loop.names,
            metrics=rows.metrics,
            finite=rows.finite,
            snapshots=np.asarray(state.snapshots),
            snapshot_generations=snapshot_generations(cfg),
            heldout=np.asarray(get_ref().heldout),
            state=state,
            seconds=time.perf_counter() - t0,
            seed=seed,
            knobs=columns,
            resumed=resumed,
            generations=gens,
        )


def _run_keys(seed: int, seeds: int, repeats: int) -> tuple[Key, Key, Key]:
    """(run keys [repeats * seeds]: the S seed keys tiled ``repeats`` times, held-out key, projection key), all
    derived from key(seed): run key i is fold_in(fold_in(key(seed), 0), i).

    With JAX's default threefry keys they are hashed in numpy (``madloop.rng.fold_in_np``, the same bits) and no
    program is compiled for them; another key implementation derives them in one compiled program."""
    if jax.config.jax_default_prng_impl != "threefry2x32":
        return _run_keys_compiled(jnp.uint32(seed), seeds, repeats)
    base = np.array([0, seed], np.uint32)  # key(seed) of a 32-bit seed: the pair (0, seed)
    run_keys = fold_in_np(fold_in_np(base, _SEEDS), np.arange(seeds))
    wrap = jax.random.wrap_key_data
    return wrap(np.tile(run_keys, (repeats, 1))), wrap(fold_in_np(base, _HELDOUT)), wrap(fold_in_np(base, _PROJECTIONS))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _run_keys_compiled(seed: jax.Array, seeds: int, repeats: int) -> tuple[Key, Key, Key]:
    """``_run_keys`` as one compiled program, for any key implementation (built from eager ops they cost 0.3 s of
    compilation)."""
    base = jax.random.key(seed)
    run_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(jax.random.fold_in(base, _SEEDS), jnp.arange(seeds))
    tiled = jax.random.wrap_key_data(jnp.tile(jax.random.key_data(run_keys), (repeats, 1)))
    return tiled, jax.random.fold_in(base, _HELDOUT), jax.random.fold_in(base, _PROJECTIONS)


def _put_rows(rows: Row, new: Row, first: int, b: int, count: int) -> None:
    """Copies the first ``count`` rows of a chunk (new: [B, L]), generations first.., into the table buffers
    rows [b, G + 1], dropping padded runs."""

    def put(buf, a):
        buf[:, first : first + count] = np.asarray(a)[:b, :count]

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
    traced values (the knobs of ``madloop.knobs.KNOBS`` and loop.seed): no recompilation.

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
