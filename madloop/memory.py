"""The memory a run's largest buffers need, estimated from the validated config alone, checked before allocation.

Every estimate is a lower bound: it counts only arrays the run must hold (the loop state that every generation
carries: pools, real sets, parameters, snapshots; the outputs of matrix products: distance matrices, scatter
matrices; the truth's covariance that building the data source allocates; the results table), at their exact
shapes, and nothing for XLA's temporaries or double buffering. A config is refused only when that lower bound
exceeds the memory available, so a refused config could not have run, and configs that fit are never refused.
"""

from __future__ import annotations

import math
import os
from typing import Any, NamedTuple

from madloop import config as C
from madloop import knobs, pools, regimes
from madloop import metrics as M
from madloop.curation import KChoiceCuration
from madloop.data.images import Cifar10Data, DigitsData, MnistData
from madloop.data.linear import LinearData
from madloop.data.toy import GaussianData, Grid25Data, MixtureData, Ring8Data
from madloop.guidance import NoGuidance, SimsGuidance
from madloop.models.diffusion import DiffusionModel
from madloop.models.edm import EDMModel
from madloop.models.flow_matching import FlowMatchingModel
from madloop.models.gaussian import GaussianModel
from madloop.models.gmm import GMMModel
from madloop.models.kde import KDEModel
from madloop.models.linear import LinearModel
from madloop.models.ngram import CategoricalModel

GIB = 1 << 30
INT32_MAX = 2**31 - 1
DIGITS_IMAGES = 1797  # scikit-learn's 8 x 8 digits
ENV = "MADLOOP_MEMORY_GIB"  # the memory to plan for, in GiB, instead of the machine's available memory


class Buffer(NamedTuple):
    """One array (or one array per run) that a run must hold.

    Attributes:
        name: what it is, in the words of the docs (e.g. "the model covariances").
        shape: its size as a product, e.g. "16 runs x 8 components x 100000 x 100000 float32".
        nbytes: its size in bytes.
        fields: the config fields that size it, the one to lower first leading (named by the error).
        main: held during every generation together with the other main buffers (counted in the total);
            False for a buffer that lives within one step of a generation (distance matrices, candidates).
        dims: its axes' lengths (runs first).
    """

    name: str
    shape: str
    nbytes: int
    fields: tuple[str, ...]
    main: bool = True
    dims: tuple[int, ...] = ()


def data_dim(data: C.DataConfig) -> int:
    """d, the values per sample of a data source (an image source's pixels per image), from its config."""
    if isinstance(data, DigitsData):
        return 64
    if isinstance(data, MnistData):
        return (data.size or 28) ** 2
    if isinstance(data, Cifar10Data):  # three colour planes
        return 3 * (data.size or 32) ** 2
    if isinstance(data, LinearData):  # rows [x, y]
        return data.dim + 1
    return getattr(data, "dim", getattr(data, "length", 2))  # a discrete source's rows hold `length` tokens


def _heldout_size(cfg: C.Config) -> int:
    """A lower bound on the held-out set's size: eval.n draws of a distribution, or an image set's held-out part
    (digits gives round(heldout x count) images of each of its 10 classes: at least heldout x 1797 - 5)."""
    if isinstance(cfg.data, DigitsData):
        return max(1, int(cfg.data.heldout * DIGITS_IMAGES) - 5)
    if isinstance(cfg.data, MnistData):
        return cfg.data.heldout_n
    return cfg.eval.n


def _truth_modes(data: C.DataConfig) -> int:
    """Components of a mixture truth (0 for other truths)."""
    if isinstance(data, Ring8Data):
        return data.modes
    if isinstance(data, Grid25Data):
        return data.side**2
    if isinstance(data, MixtureData):
        return data.components
    return 0


def _count(value: Any) -> int:
    """A count field that later checks validate (curation.k, guidance.n_aux): its value, or 0 when invalid."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


grid_points = knobs.grid_points


def _mlp_params(m: DiffusionModel, d: int) -> int:
    """Weights of the MLP denoiser: [x, emb(t), onehot(y)] -> depth x Dense(width) -> Dense(d)."""
    inputs = d + m.time_features + (m.classes + 1 if m.classes else 0)
    return (inputs + 1) * m.width + (m.depth - 1) * (m.width + 1) * m.width + (m.width + 1) * d


def _unet_params(m: DiffusionModel) -> int:
    """A lower bound on the U-Net's weights: the two 3 x 3 convolutions of every residual block, c -> c (the
    first one of a level's first block maps from fewer channels, counted as c -> c / 2 at least)."""
    return sum(m.blocks * 9 * c * c * 2 - 9 * c * (c - c // 2) for c in m.channels)


def network_params(m: DiffusionModel, d: int) -> int:
    """The denoiser's trainable weights (exact for the MLP, a lower bound for the U-Net)."""
    return _unet_params(m) if m.network == "unet" else _mlp_params(m, d)


def _stats_pool(cfg: C.Config) -> bool:
    """Whether an accumulate pool is kept as sufficient statistics (``madloop.pools.keeps_statistics``; the
    families with statistics: Gaussian, linear, categorical and n-gram)."""
    return (
        cfg.loop.stats_pool
        and cfg.regime.pool == "accumulate"
        and isinstance(cfg.model, GaussianModel | LinearModel | CategoricalModel)
        and isinstance(cfg.guidance, NoGuidance)
    )


def _pool_capacity(r: C.RegimeConfig, generations: int) -> int:
    # madloop.regimes.pool_capacity and train_size, restated: this module sits on the config floor.
    return r.n_synth if r.pool == "replace" else generations * r.n_synth


def _train_size(r: C.RegimeConfig, generations: int) -> int:
    s = pools.subsample_size(r) if r.pool == "accumulate_subsample" else _pool_capacity(r, generations)
    t = max(r.n_real, s) if isinstance(r, regimes.FullySynthetic) else r.n_real + s
    return max(t, regimes.initial_size(r))


def _snapshot_count(generations: int, snapshots: int) -> int:
    """How many generations keep samples (``madloop.loop.snapshot_generations``): 0, G and ``snapshots`` evenly
    spaced ones, rounded. Points spaced at least 1 apart round to distinct generations; closer ones hit every
    generation 0..G."""
    return min(snapshots + 2, generations + 1)


def buffers(cfg: C.Config) -> list[Buffer]:
    """The run's largest buffers, from a config whose data, regime, model, loop and eval fields are validated
    (a count sweep's buffer is the config's count itself: ``knobs.check`` refuses a listed count above it).

    Returns:
        the buffers, in no particular order; each a lower bound on an array the run holds.
    """
    r, lp, ev, m = cfg.regime, cfg.loop, cfg.eval, cfg.model
    b = 8 if getattr(lp, "precision", "float32") == "float64" else 4
    k = grid_points(cfg)
    runs = lp.seeds * k
    per_run = f"{lp.seeds} seeds x {k} grid points" if k > 1 else f"{lp.seeds} seeds"
    seeds_fields = ("loop.seeds", "sweep") if k > 1 else ("loop.seeds",)
    d = data_dim(cfg.data)
    classes = getattr(m, "classes", 0)
    row = d + 1 if classes else d  # a class-conditional family carries the label in a last column
    g = lp.generations
    out: list[Buffer] = []

    def add(name: str, dims: list[tuple[int, str]], fields: tuple[str, ...], main: bool = True, size: int = b):
        """A buffer of runs x the product of ``dims`` (value, label) of ``size`` bytes each."""
        n = runs * math.prod(v for v, _ in dims) * size
        shape = " x ".join([per_run, *(f"{v} {label}".rstrip() for v, label in dims)])
        kind = {4: "float32", 8: "float64"}.get(size, f"{size} bytes")
        out.append(Buffer(name, f"{shape} {kind}", n, fields + seeds_fields, main, (runs, *(v for v, _ in dims))))

    # The truth's covariance: building the data source (which validation does) holds it in float64 (numpy) and in
    # float32 (JAX); a mixture truth holds one float32 matrix per component.
    if isinstance(cfg.data, GaussianData):
        out.append(Buffer("the truth's covariance", f"{d} x {d} float64 + float32", d * d * 12, ("data.dim",)))
    elif isinstance(cfg.data, MixtureData):  # the identity in float64, then one float32 copy per component
        kt = cfg.data.components
        shape = f"{d} x {d} float64 + {kt} components x {d} x {d} float32"
        out.append(Buffer("the truth's covariances", shape, d * d * (8 + 4 * kt), ("data.dim", "data.components")))

    # The loop state every generation carries, per run: the synthetic pool, the real set, parameters, snapshots.
    if not _stats_pool(cfg):
        cap = _pool_capacity(r, g)
        if r.pool == "replace":
            add("the synthetic pool", [(cap, "samples"), (row, "values")], ("regime.n_synth", "data.dim"))
        else:
            pool_fields = ("regime.n_synth", "loop.generations", "data.dim")
            add(
                "the accumulated pool", [(g * r.n_synth, "slots (generations x n_synth)"), (row, "values")], pool_fields
            )
    add("the real set", [(r.n_real, "samples"), (row, "values")], ("regime.n_real", "data.dim"))
    if isinstance(m, GaussianModel):
        add("the model covariances", [(d, ""), (d, "")], ("data.dim",))
    elif isinstance(m, GMMModel):
        add("the model covariances", [(m.components, "components"), (d, ""), (d, "")], ("data.dim", "model.components"))
    elif isinstance(m, KDEModel):
        t = r.n_real if _stats_pool(cfg) else _train_size(r, g)
        add("the KDE's kernel centres", [(t, "points"), (d, "values")], ("regime.n_synth", "loop.generations"))
        add("the KDE's kernel factor", [(d, ""), (d, "")], ("data.dim",))
    elif isinstance(m, DiffusionModel | EDMModel | FlowMatchingModel):  # (the same networks)
        # The weights, their EMA and AdamW's two moments; SIMS adds the auxiliary model's four copies.
        copies = 8 if isinstance(cfg.guidance, SimsGuidance) else 4
        p = network_params(m, d)
        net_fields = ("model.channels",) if m.network == "unet" else ("model.width", "model.depth", "data.dim")
        add("the network (weights, EMA, optimiser moments)", [(copies, "copies"), (p, "weights")], net_fields)
    n_snap = _snapshot_count(g, ev.snapshots)
    snap_fields = ("eval.snapshot_n", "eval.snapshots", "data.dim")
    add("the snapshots", [(n_snap, "generations"), (ev.snapshot_n, "samples"), (d, "values")], snap_fields)

    # The results: rows [runs, G + 1] per column in float32, then the table's float64 columns.
    names = ev.metrics
    columns = (len(names) if names is not None else 10) + 1  # the ten default sample metrics always apply, + finite
    add("the results", [(g + 1, "generations"), (columns, "columns")], ("loop.generations",), size=4 + 8)

    # The held-out set, drawn once per run (shared by every seed).
    held = _heldout_size(cfg)
    out.append(Buffer("the held-out set", f"{held} samples x {d} values", held * d * b, ("eval.n",), True, (held, d)))

    # Within one generation's evaluation: eval.n model samples and, for k-NN and kernel metrics, the distances
    # between the held-out set and the samples (the output of a matrix product).
    known = [
        n for n in names or () if isinstance(n, str) and M.group_of(n) is not None
    ]  # eval.metrics is checked later
    sample_metrics = names is None or any(M.is_sample_metric(n) for n in known)
    n_draw = max(ev.n if sample_metrics else 0, ev.snapshot_n)
    add("the evaluation samples", [(n_draw, "samples"), (d, "values")], ("eval.n", "data.dim"), main=False)
    if any(M.group_of(n).name in DISTANCE_GROUPS for n in known):
        add("the k-NN distance matrices", [(held, "held-out"), (ev.n, "samples")], ("eval.n",), main=False)
    elif names is None or any(M.group_of(n).name in BLOCKED_GROUPS for n in known):
        rows = min(held, M.row_block(ev.n))  # a block of rows of the matrix (metrics.row_blocks)
        add("the k-NN distance blocks", [(rows, "held-out"), (ev.n, "samples")], ("eval.n",), main=False)
    if names is None or any(M.group_of(n).name == "mmd" for n in known):
        # the MMD bandwidths: the median over every held-out pair, from the whole held-out matrix (once, not per run)
        kind = {4: "float32", 8: "float64"}[b]
        shape = f"{held} held-out x {held} held-out {kind}"
        out.append(Buffer("the held-out distance matrix", shape, held * held * b, ("eval.n",), False, (held, held)))
    if names is None or "sw2" in names:  # the held-out set's sorted projections, and each run's
        add(
            "the sliced-W2 projections",
            [(ev.projections, "directions"), (ev.n, "samples")],
            ("eval.projections",),
            False,
        )
    kt = _truth_modes(cfg.data)
    mode_names = ("modes", "modes_hq", "hq", "mode_tv", "rare_mass", "rare_modes", "tail_mass")
    if kt >= 1 and (names is None or any(n in names for n in mode_names)):
        add("the mode distances", [(kt, "modes"), (ev.n, "samples"), (d, "values")], ("eval.n",), main=False)
    if isinstance(cfg.curation, KChoiceCuration) and (kc := _count(cfg.curation.k)):
        add("the curation's candidates", [(kc * r.n_synth, "samples"), (row, "values")], ("curation.k",), False)
    if isinstance(cfg.guidance, SimsGuidance) and (n_aux := _count(cfg.guidance.n_aux)):
        add("SIMS's auxiliary samples", [(n_aux, "samples"), (row, "values")], ("guidance.n_aux",), main=False)
    return out


# The metric groups (madloop.metrics.GROUPS) that compute a held-out x samples distance or kernel matrix whole
# (vendi's is samples x samples, the same size with eval.n samples and held-out points), and those that compute it
# by blocks of rows (metrics.row_blocks), holding one block per run at a time.
DISTANCE_GROUPS = ("vendi", "alpha_beta")
BLOCKED_GROUPS = ("mmd", "prdc", "kid")


def _cgroup_limit() -> int | None:
    """Bytes this process's cgroup (v2) may still allocate, when it has a limit."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == "max" else max(0, int(limit) - used)


def available_memory() -> int | None:
    """Bytes of memory available to a run: ``MADLOOP_MEMORY_GIB`` when set, else /proc/meminfo's MemAvailable (or
    os.sysconf's available pages) capped by the cgroup's limit; None when unknown (no check).

    Raises:
        ConfigError: when MADLOOP_MEMORY_GIB is not a number > 0.
    """
    if (env := os.environ.get(ENV)) is not None:
        try:
            gib = float(env)
        except ValueError:
            gib = math.nan
        if not gib > 0:
            raise C.ConfigError(ENV, env, "must be a number of GiB > 0 (inf turns the memory check off)")
        return None if math.isinf(gib) else int(gib * GIB)
    found = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        found = None
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    limit = _cgroup_limit()
    return found if limit is None else min(found, limit)


def show_bytes(n: int) -> str:
    """A size for people: '74.5 GiB', '5.8 TiB', '312.0 MiB'."""
    for unit, size in (("TiB", GIB << 10), ("GiB", GIB), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def _field_value(cfg: C.Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node


def _lower(fields: tuple[str, ...]) -> str:
    shown = [f for f in dict.fromkeys(fields) if f != "sweep"] + (["the sweep lists"] if "sweep" in fields else [])
    return "lower " + (", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else shown[0])


def check_memory(cfg: C.Config, available: int | None = None) -> None:
    """Refuses a config whose buffers cannot fit in memory, before anything is allocated.

    Args:
        cfg: a config whose data, regime, model, loop and eval fields are validated.
        available: bytes of memory to plan for; None reads ``available_memory()``.

    Raises:
        ConfigError: one line naming the largest buffer, its estimated size and what to lower, when it (or the
            total of the buffers every generation holds) exceeds the memory available.
    """
    if available is None:
        available = available_memory()
        if available is None:
            return
    found = buffers(cfg)
    for buf in found:  # JAX indexes (arange, counts as int32 knobs, slot offsets) with int32
        if max(buf.dims, default=0) > INT32_MAX:
            key = buf.fields[0] if buf.dims[0] <= INT32_MAX else "loop.seeds"
            raise C.ConfigError(
                key, _field_value(cfg, key), f"{buf.name} would have an axis of {max(buf.dims)} > 2**31 - 1 (int32)"
            )
    largest = max(found, key=lambda buf: buf.nbytes)
    main = [buf for buf in found if buf.main]
    total = sum(buf.nbytes for buf in main)
    have = f"more than the {show_bytes(available)} of memory available"
    key = largest.fields[0]
    if largest.nbytes > available:
        raise C.ConfigError(
            key,
            _field_value(cfg, key),
            f"{largest.name} ({largest.shape}) would need {show_bytes(largest.nbytes)}, {have}; "
            + _lower(largest.fields),
        )
    if total > available:
        top = max(main, key=lambda buf: buf.nbytes)
        key = top.fields[0]
        raise C.ConfigError(
            key,
            _field_value(cfg, key),
            f"the run's state would need {show_bytes(total)} together (the largest part, {top.name}: "
            f"{show_bytes(top.nbytes)}), {have}; {_lower(top.fields)}",
        )
