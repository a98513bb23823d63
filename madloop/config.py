"""Frozen dataclass schemas for every config group, registered in Hydra's ConfigStore, and their validation."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from omegaconf import MISSING, OmegaConf

# --------------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class DataConfig:
    """Base of the real-data sources (``data=``)."""


@dataclass(frozen=True)
class GaussianData(DataConfig):
    """N(mean, cov) in ``dim`` dimensions; mean defaults to 0, cov to ``scale`` * I."""

    dim: int = 2
    mean: list[float] | None = None
    cov: Any = None  # a d x d nested list (validated in _validate_data)
    scale: float = 1.0


@dataclass(frozen=True)
class Ring8Data(DataConfig):
    """``modes`` isotropic Gaussians of std ``std`` evenly spaced on a circle of radius ``radius`` (2-D)."""

    modes: int = 8
    radius: float = 2.0
    std: float = 0.05


@dataclass(frozen=True)
class Grid25Data(DataConfig):
    """A ``side`` x ``side`` grid of isotropic Gaussians, ``spacing`` apart, centred on 0 (2-D)."""

    side: int = 5
    spacing: float = 2.0
    std: float = 0.05


@dataclass(frozen=True)
class MixtureData(DataConfig):
    """``components`` isotropic Gaussians with means uniform in [-box, box]^dim drawn from ``layout_seed``."""

    dim: int = 2
    components: int = 5
    std: float = 0.1
    box: float = 3.0
    layout_seed: int = 0


@dataclass(frozen=True)
class MoonsData(DataConfig):
    """Two interleaving half circles (as scikit-learn's make_moons) plus isotropic Gaussian noise."""

    noise: float = 0.05


@dataclass(frozen=True)
class SwissRollData(DataConfig):
    """The 2-D swiss roll t (cos t, sin t) / 5, t ~ 1.5 pi (1 + 2u), plus isotropic Gaussian noise."""

    noise: float = 0.05


@dataclass(frozen=True)
class CirclesData(DataConfig):
    """Two concentric circles of radius 1 and ``factor`` (as make_circles) plus isotropic Gaussian noise."""

    factor: float = 0.5
    noise: float = 0.05


@dataclass(frozen=True)
class DigitsData(DataConfig):
    """scikit-learn's 8 x 8 handwritten digits (1,797 images, 10 classes) in [-1, 1]; the loop carries each image
    as a row of 64 pixels. A fixed stratified split (``split_seed``) holds out ``heldout`` of every class: the
    evaluation's reference set (359 images at 0.2); the loop draws its real data from the rest (1,438)."""

    heldout: float = 0.2
    split_seed: int = 0


@dataclass(frozen=True)
class MnistData(DataConfig):
    """MNIST (LeCun et al. 1998) from a local folder, never downloaded: the four IDX files (optionally ``.gz``)
    or Keras's ``mnist.npz``. Images are scaled to [-1, 1] (pixel / 127.5 - 1) and carried as rows of
    ``size`` x ``size`` pixels (784 at 28).

    Attributes:
        path: the folder holding the files (required).
        size: resize to ``size`` x ``size`` (block means when it divides 28); null keeps 28.
        train_n: the loop draws its real data from the first ``train_n`` training images; null = all (60,000).
        heldout_n: the evaluation's reference set: a fixed stratified subset (seed 0) of this many test images.
    """

    path: str | None = None
    size: int | None = None
    train_n: int | None = None
    heldout_n: int = 2000


# -------------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ModelConfig:
    """Base of the model families (``model=``)."""


@dataclass(frozen=True)
class GaussianModel(ModelConfig):
    """Full-covariance Gaussian; ``estimator`` = ``mle`` (divide by n) or ``unbiased`` (divide by n - 1)."""

    estimator: str = "mle"


@dataclass(frozen=True)
class GMMModel(ModelConfig):
    """Gaussian mixture fitted by weighted EM.

    ``init_iters`` EM iterations for a fit from scratch (generation 0, or every generation without warm start),
    ``iters`` per warm-started generation; ``reg_covar`` is added to every component covariance (floor).
    """

    components: int = 8
    init_iters: int = 100
    iters: int = 10
    reg_covar: float = 1e-6
    init: str = "kmeans++"


@dataclass(frozen=True)
class KDEModel(ModelConfig):
    """Gaussian KDE; ``bandwidth`` = ``scott`` | ``silverman`` | a positive factor (scipy's gaussian_kde)."""

    bandwidth: Any = "scott"


@dataclass(frozen=True)
class DiffusionModel(ModelConfig):
    """Denoising diffusion model (variance-preserving forward process) with an MLP or a U-Net denoiser.

    Attributes:
        network: the denoiser: ``mlp`` (vectors or flattened images) or ``unet`` (a convolutional U-Net over the
            image shape; needs an image source, data=digits or mnist).
        width: hidden units per layer of the MLP denoiser.
        depth: hidden layers of the MLP denoiser.
        channels: the U-Net's channels per resolution level (2 x 2 pooling between levels): the image side
            must be divisible by 2^(levels - 1).
        blocks: the U-Net's residual blocks per level.
        time_features: sinusoidal features of the diffusion time t.
        schedule: ``cosine`` (Nichol & Dhariwal 2021) or ``linear`` (the VP SDE of Song et al. 2021,
            beta(t) from 0.1 to 20).
        prediction: what the network predicts: ``eps`` (the noise) or ``x0`` (the clean sample).
        sampler: ``ddpm`` (stochastic ancestral) or ``ddim`` (deterministic, eta = 0).
        sample_steps: sampler steps from t = 1 to t = 0.
        clip_x0: clip the sampler's predicted x0 to [-1, 1] on every step (DDPM's image sampler); null = on for
            image sources (data=digits, mnist: pixels in [-1, 1]), off for vectors.
        train_steps: optimiser steps of a fit from scratch (generation 0, or each generation without warm start).
        finetune_steps: optimiser steps of a warm-started generation (from the previous generation's weights).
        batch: minibatch size, drawn with probability proportional to the training-set weights.
        lr: AdamW learning rate (a traced hyperparameter, optax.inject_hyperparams).
        weight_decay: AdamW weight decay.
        ema: EMA decay of the weights that sample; within each fit the decay warms up as
            min(ema, (1 + i) / (10 + i)) at step i.
        classes: 0 = unconditional; else a class-conditional model over this many classes, which must equal the
            truth's number of components (labels are the mixture component a real sample was drawn from, and the
            class a synthetic sample was generated for).
        label_dropout: probability that a training label is replaced by the null label (classifier-free
            guidance needs the unconditional model too; Ho & Salimans 2022).
        bias: how ``bias.lam`` acts: ``temperature`` (the sampler's noise variance) or ``cfg`` (classifier-free
            guidance with weight w = 1 / lam - 1, as in the MAD paper; needs classes > 0).
    """

    network: str = "mlp"
    width: int = 128
    depth: int = 3
    channels: list[int] = field(default_factory=lambda: [32, 64])
    blocks: int = 1
    time_features: int = 32
    schedule: str = "cosine"
    prediction: str = "eps"
    sampler: str = "ddpm"
    sample_steps: int = 100
    clip_x0: bool | None = None
    train_steps: int = 4000
    finetune_steps: int = 1000
    batch: int = 128
    lr: float = 5e-3
    weight_decay: float = 0.0
    ema: float = 0.995
    classes: int = 0
    label_dropout: float = 0.1
    bias: str = "temperature"


# ----------------------------------------------------------------------------------------------- guidance


@dataclass(frozen=True)
class GuidanceConfig:
    """Base of the sampling-guidance options (``guidance=``)."""


@dataclass(frozen=True)
class NoGuidance(GuidanceConfig):
    """Plain sampling from the fitted model."""


@dataclass(frozen=True)
class SimsGuidance(GuidanceConfig):
    """SIMS negative guidance (Alemohammad et al. 2024) for diffusion models.

    After each generation's base model is fitted, ``n_aux`` samples are drawn from it and a copy is fine-tuned
    on them for ``aux_steps`` steps (the auxiliary model); sampling then uses
    ``(1 + omega) s_base - omega s_aux``.

    Attributes:
        omega: guidance strength (>= 0; 0 is the base model exactly). Traced, so it can be vmapped.
        n_aux: synthetic samples the auxiliary model is fine-tuned on.
        aux_steps: fine-tuning steps of the auxiliary model.
        control: ``none`` (fine-tune on all n_aux samples, as in the paper's self-improvement) or ``modes``
            (distribution control: fine-tune on the samples weighted by share / target of their mode, so the
            auxiliary model over-represents what the base over-represents and negative guidance moves the mode
            proportions toward the target; see ``madloop.guidance.mode_ratio_weights``).
        target: mode weights for ``control=modes``, one per component of the truth, all > 0 (normalised);
            null = the truth's own weights.
    """

    omega: float = 1.0
    n_aux: int = 1024
    aux_steps: int = 300
    control: str = "none"
    target: list[float] | None = None


# ----------------------------------------------------------------------------------------------- curation


@dataclass(frozen=True)
class CurationConfig:
    """Base of the curation options (``curation=``): what happens to generation g - 1's samples before they
    enter generation g's training set."""


@dataclass(frozen=True)
class NoCuration(CurationConfig):
    """Every synthetic sample enters the pool."""


@dataclass(frozen=True)
class KChoiceCuration(CurationConfig):
    """K-choice curation (Ferbach et al. 2024, after the Bradley-Terry / Plackett-Luce choice model): each of the
    ``regime.n_synth`` synthetic samples is chosen from ``k`` fresh model samples, sample j with probability
    softmax(r(x_j) / temperature). Evaluation samples (the model's own distribution) are not curated.

    Attributes:
        k: candidates per kept sample (1 = no curation); the model draws k * n_synth samples per generation.
        temperature: of the choice; -> 0 keeps the best of k, -> inf picks uniformly. Traced (vmappable with
            ``sweep.curation.temperature``).
        reward: ``mode``: minus the distance to the centre of component ``mode`` of a mixture truth;
            ``point``: minus the distance to ``target``; ``class``: the log-probability of class ``label``
            under the feature classifier of an image source (data=digits, mnist).
        mode: the component of the truth (``reward=mode``).
        target: a point with ``data``'s dimension (``reward=point``).
        label: the class (``reward=class``).
    """

    k: int = 4
    temperature: float = 1.0
    reward: str = "mode"
    mode: int = 0
    target: list[float] | None = None
    label: int = 0


# ------------------------------------------------------------------------------------------------- regime

POOLS = ("replace", "accumulate", "accumulate_subsample")


@dataclass(frozen=True)
class RegimeConfig:
    """Base of the loop families (``regime=``): how generation g's training set is built.

    Attributes:
        pool: synthetic pool policy: ``replace`` | ``accumulate`` | ``accumulate_subsample``.
        n_real: real samples generation 0 is fitted on (and the real part's size where the regime has one).
        n_synth: synthetic samples drawn from generation g - 1 for generation g.
        subsample: size of the uniform subsample of the accumulated pool (``accumulate_subsample``);
            None means ``n_synth``.
        real_weight: frequency weight of each real sample relative to a synthetic one (1 = plain pooling).
        n_initial: real samples generation 0 is fitted on, when it differs from ``n_real`` (null = n_real): e.g.
            MAD's test that the fresh data loop forgets its initial model. The real set (``n_real`` samples, the
            fixed set of synthetic augmentation) is the same for every n_initial (common random numbers);
            generation 0 fits its first n_initial samples, or all of it plus n_initial - n_real further draws.
            A ``sweep.regime.n_real`` count then masks only later generations' real part.
    """

    pool: str = "replace"
    n_real: int = 256
    n_synth: int = 256
    subsample: int | None = None
    real_weight: float = 1.0
    n_initial: int | None = None


@dataclass(frozen=True)
class FullySynthetic(RegimeConfig):
    """Only generation 0 sees real data."""


@dataclass(frozen=True)
class SyntheticAugmentation(RegimeConfig):
    """Generation 0's real set is reused in every generation's training set."""


@dataclass(frozen=True)
class FreshData(RegimeConfig):
    """``n_real`` new real samples are drawn for every generation."""


# ------------------------------------------------------------------------------------------- loop, bias, eval


@dataclass(frozen=True)
class LoopConfig:
    """Generations, seeds and stepping.

    Attributes:
        generations: G; rows for generations 0..G are produced.
        seeds: number of seeds vmapped in one compiled program.
        seed: base seed; seed i of the run uses key fold_in(key(seed), i).
        warm_start: start generation g's fit from generation g - 1 (else refit from scratch each generation).
        chunk: generations per compiled call (progress is reported between calls); 0 = automatic
            (about 20 progress updates), and chunk >= generations runs the whole loop as one program.
        checkpoint: save every run's state after generation 0 and after every chunk (Orbax, in the run's
            output folder under ``checkpoint/``), and resume from the last one found there. ``loop.chunk=1``
            checkpoints every generation.
        stats_pool: keep an ``accumulate`` pool as the model family's sufficient statistics where the family
            has them (gaussian) and no guidance is used: the same fits up to float rounding, in O(n) time per
            generation and O(1) memory instead of O(G n). false keeps every sample.
        precision: ``float32`` (default) or ``float64``: JAX's x64 mode for this run only (data, parameters,
            samples and metrics in float64). float32 follows the Gaussian laws of means and traces at every
            horizon the docs use; the log-determinant of a collapsing covariance needs float64 after a few tens
            of generations at d >= 10 (docs/theory.md, "float32 and float64").
    """

    generations: int = 20
    seeds: int = 16
    seed: int = 0
    warm_start: bool = True
    chunk: int = 0
    checkpoint: bool = False
    stats_pool: bool = True
    precision: str = "float32"


@dataclass(frozen=True)
class BiasConfig:
    """Sampling bias ``lam``: 1 = unbiased, < 1 favours quality over diversity, > 1 samples hotter."""

    lam: float = 1.0


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    Attributes:
        n: model samples per generation for sample-based metrics, and the size of the held-out real set.
        metrics: names of the metrics to compute; None = every metric that applies.
        k: nearest neighbours for precision / recall / density / coverage.
        projections: directions for the sliced Wasserstein distance.
        mode_share: a mode counts as covered when at least this share of samples lies within 3 sigma of it.
        snapshots: generations (besides 0 and G) whose samples are kept for samples.png.
        snapshot_n: samples kept per snapshot.
    """

    n: int = 1000
    metrics: list[str] | None = None
    k: int = 5
    projections: int = 128
    mode_share: float = 0.01
    snapshots: int = 3
    snapshot_n: int = 500


@dataclass(frozen=True)
class SweepBias:
    """Values of ``bias.lam`` to vmap (null = the single value ``bias.lam``)."""

    lam: list[float] | None = None


@dataclass(frozen=True)
class SweepRegime:
    """Values of ``regime.real_weight``, and counts ``regime.n_real`` / ``regime.n_synth``, to vmap (null = the
    single value). A count sweep is a mask over a static maximum: the regime's count becomes the buffer size
    max(list), and each grid point uses (gives nonzero weight to) only its first ``count`` samples."""

    real_weight: list[float] | None = None
    n_real: list[int] | None = None
    n_synth: list[int] | None = None


@dataclass(frozen=True)
class SweepGuidance:
    """Values of ``guidance.omega`` to vmap (null = the single value; needs ``guidance=sims``)."""

    omega: list[float] | None = None


@dataclass(frozen=True)
class SweepCuration:
    """Values of ``curation.temperature`` to vmap (null = the single value; needs ``curation=k_choice``)."""

    temperature: list[float] | None = None


@dataclass(frozen=True)
class SweepConfig:
    """Float knobs swept inside one compiled program (e.g. ``sweep.bias.lam=[0.5,0.8,1.0]``).

    The grid is the Cartesian product of the given lists; every grid point runs ``loop.seeds`` seeds with the same
    keys (common random numbers), and the whole grid x seeds batch is one vmapped program. ``metrics.csv`` gets
    one column per swept knob (``lam``, ``real_weight``, ``omega``, ``n_real``, ``n_synth``).
    """

    bias: SweepBias = field(default_factory=SweepBias)
    regime: SweepRegime = field(default_factory=SweepRegime)
    guidance: SweepGuidance = field(default_factory=SweepGuidance)
    curation: SweepCuration = field(default_factory=SweepCuration)


@dataclass(frozen=True)
class Config:
    """The whole experiment; JAX code only ever sees this frozen object."""

    data: Any = MISSING
    model: Any = MISSING
    regime: Any = MISSING
    loop: LoopConfig = field(default_factory=LoopConfig)
    bias: BiasConfig = field(default_factory=BiasConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guidance: Any = MISSING
    curation: Any = MISSING
    sweep: SweepConfig = field(default_factory=SweepConfig)
    plots: bool = True


# Group option name -> schema. The YAML files in conf/<group>/<name>.yaml extend these.
SCHEMAS: dict[str, dict[str, type]] = {
    "data": {
        "gaussian": GaussianData,
        "ring8": Ring8Data,
        "grid25": Grid25Data,
        "mixture": MixtureData,
        "moons": MoonsData,
        "swissroll": SwissRollData,
        "circles": CirclesData,
        "digits": DigitsData,
        "mnist": MnistData,
    },
    "model": {"gaussian": GaussianModel, "gmm": GMMModel, "kde": KDEModel, "diffusion": DiffusionModel},
    "guidance": {"none": NoGuidance, "sims": SimsGuidance},
    "curation": {"none": NoCuration, "k_choice": KChoiceCuration},
    "regime": {
        "fully_synthetic": FullySynthetic,
        "synthetic_augmentation": SyntheticAugmentation,
        "fresh_data": FreshData,
    },
}


def _node(cls: type) -> Any:
    # Frozen dataclasses become read-only OmegaConf nodes, which Hydra could not merge YAML or overrides into;
    # the schema node is made writable, and OmegaConf.to_object still builds the frozen dataclass.
    node = OmegaConf.structured(cls)
    _writable(node)
    return node


def _writable(node: Any) -> None:
    from omegaconf import DictConfig

    OmegaConf.set_readonly(node, False)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _writable(child)


def register_configs() -> None:
    """Registers the schemas in Hydra's ConfigStore under ``schema/`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(group="schema", name="config", node=_node(Config))
    for group, options in SCHEMAS.items():
        for name, cls in options.items():
            cs.store(group=f"schema/{group}", name=name, node=_node(cls))


def option_name(group: str, node: Any) -> str:
    """The group option name of a config object, e.g. ``option_name("regime", FullySynthetic())``."""
    for name, cls in SCHEMAS[group].items():
        if type(node) is cls:
            return name
    raise TypeError(f"{type(node).__name__} is not a {group} option")


# ------------------------------------------------------------------------------------------------ validation


class ConfigError(ValueError):
    """An invalid setting: names the field, the value and what is allowed (one line)."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={_show(value)}: {allowed}")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_show(v) for v in value) + "]"
    return str(value)


def _int_at_least(key: str, value: Any, low: int, why: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(key, value, f"must be an integer >= {low}{why}")


def _positive(key: str, value: Any, why: str = "") -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(key, value, f"must be a finite number > 0{why}")


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, value, "allowed: " + ", ".join(allowed))


def data_dim(data: DataConfig) -> int:
    """Dimension of the samples a data source produces."""
    return getattr(data, "dim", 2)


def subsample_size(regime: RegimeConfig) -> int:
    """Synthetic slots of an ``accumulate_subsample`` training set: ``subsample``, or ``n_synth`` when null."""
    return regime.subsample if regime.subsample is not None else regime.n_synth


def _validate_data(d: DataConfig) -> None:
    for f in fields(d):
        v = getattr(d, f.name)
        key = f"data.{f.name}"
        if f.name in ("dim", "components", "modes", "side"):
            _int_at_least(key, v, 1)
        elif f.name in ("std", "radius", "spacing", "box", "scale"):
            _positive(key, v)
        elif f.name == "noise" and (not math.isfinite(v) or v < 0):
            raise ConfigError(key, v, "must be a finite number >= 0")
    if isinstance(d, DigitsData):
        if not isinstance(d.heldout, int | float) or not 0 < d.heldout < 1:
            raise ConfigError("data.heldout", d.heldout, "must lie in (0, 1) (the held-out share of each class)")
        _int_at_least("data.split_seed", d.split_seed, 0)
    if isinstance(d, MnistData):
        _validate_mnist(d)
    if isinstance(d, CirclesData) and not 0 < d.factor < 1:
        raise ConfigError("data.factor", d.factor, "must lie in (0, 1) (inner radius / outer radius)")
    if isinstance(d, GaussianData):
        import numpy as np

        if d.mean is not None and len(d.mean) != d.dim:
            raise ConfigError("data.mean", list(d.mean), f"must have data.dim={d.dim} entries")
        if d.cov is not None:
            try:
                cov = np.asarray(d.cov, dtype=float)
            except (TypeError, ValueError):
                raise ConfigError("data.cov", d.cov, f"must be a {d.dim}x{d.dim} matrix of numbers") from None
            if cov.shape != (d.dim, d.dim):
                raise ConfigError("data.cov", list(map(list, d.cov)), f"must be a {d.dim}x{d.dim} matrix")
            if not np.allclose(cov, cov.T) or np.linalg.eigvalsh(cov).min() <= 0:
                raise ConfigError("data.cov", list(map(list, d.cov)), "must be symmetric positive definite")


def _validate_mnist(d: MnistData) -> None:
    """Checks the fields, then that ``data.path`` holds readable MNIST files with enough images (loaded once and
    cached, so that the data source reuses them)."""
    if d.size is not None and (not isinstance(d.size, int) or isinstance(d.size, bool) or not 1 <= d.size <= 28):
        raise ConfigError("data.size", d.size, "must be an integer in [1, 28] (null keeps 28 x 28)")
    if d.train_n is not None:
        _int_at_least("data.train_n", d.train_n, 1, " (null = all training images)")
    _int_at_least("data.heldout_n", d.heldout_n, 1)
    if d.heldout_n > 10_000:
        raise ConfigError("data.heldout_n", d.heldout_n, "must be an integer in [1, 10000] (MNIST's test images)")
    from madloop.data import images

    if d.path is None or not images.has_mnist(d.path):
        expected = ", ".join(f"{i}[.gz] and {lab}[.gz]" for i, lab in images.MNIST_FILES.values())
        raise ConfigError(
            "data.path",
            d.path,
            ("required: a local folder with the MNIST files" if d.path is None else "no MNIST files there")
            + f" (expected {expected}, or mnist.npz); madloop never downloads data",
        )
    try:
        train, held = images.mnist_parts(d.path, d.size, d.train_n, d.heldout_n)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError("data.path", d.path, f"unreadable MNIST files: {exc}") from None
    if d.train_n is not None and len(train.labels) < d.train_n:
        raise ConfigError("data.train_n", d.train_n, f"must be <= the {len(train.labels)} training images there")
    if len(held.labels) < d.heldout_n:
        raise ConfigError("data.heldout_n", d.heldout_n, f"must be <= the {len(held.labels)} test images there")


def _validate_model(m: ModelConfig, r: RegimeConfig) -> None:
    # The smallest training set: generation 0's n_real real samples, and for the fully synthetic loop generation
    # 1's synthetic part (n_synth samples, or fewer when a subsample is smaller).
    first_synth = min(r.n_synth, subsample_size(r)) if r.pool == "accumulate_subsample" else r.n_synth
    if isinstance(r, FullySynthetic):  # n_real is never trained on after generation 0 when n_initial is set
        smallest = min(initial_size(r), first_synth)
    else:
        smallest = min(r.n_real, initial_size(r))
    if isinstance(m, GaussianModel):
        _choice("model.estimator", m.estimator, ("mle", "unbiased"))
        if smallest < 2:
            raise ConfigError(
                "regime.n_initial"
                if r.n_initial is not None and r.n_initial < 2
                else ("regime.n_real" if r.n_real < 2 else "regime.n_synth"),
                smallest,
                "must be >= 2 to fit a covariance",
            )
    elif isinstance(m, GMMModel):
        _int_at_least("model.components", m.components, 1)
        if m.components > smallest:
            raise ConfigError(
                "model.components", m.components, f"must be <= the smallest training set ({smallest} samples)"
            )
        _int_at_least("model.init_iters", m.init_iters, 1)
        _int_at_least("model.iters", m.iters, 1)
        if not math.isfinite(m.reg_covar) or m.reg_covar < 0:
            raise ConfigError("model.reg_covar", m.reg_covar, "must be a finite number >= 0")
        _choice("model.init", m.init, ("kmeans++", "random"))
    elif isinstance(m, KDEModel):
        bw = m.bandwidth
        if isinstance(bw, str):
            _choice("model.bandwidth", bw, ("scott", "silverman"))
        else:
            _positive("model.bandwidth", bw, " or one of scott, silverman")
    elif isinstance(m, DiffusionModel):
        _validate_diffusion(m)


def _validate_diffusion(m: DiffusionModel) -> None:
    _choice("model.network", m.network, ("mlp", "unet"))
    if m.clip_x0 is not None and not isinstance(m.clip_x0, bool):
        raise ConfigError("model.clip_x0", m.clip_x0, "must be true, false or null (on for images)")
    ok = isinstance(m.channels, list | tuple) and len(m.channels) > 0
    if not ok or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in m.channels):
        raise ConfigError("model.channels", m.channels, "must be a non-empty list of integers >= 1 (one per level)")
    for name in ("width", "depth", "blocks", "sample_steps", "train_steps", "finetune_steps", "batch"):
        _int_at_least(f"model.{name}", getattr(m, name), 1)
    _int_at_least("model.time_features", m.time_features, 2)
    if m.time_features % 2:
        raise ConfigError("model.time_features", m.time_features, "must be even (sine and cosine pairs)")
    _choice("model.schedule", m.schedule, ("cosine", "linear"))
    _choice("model.prediction", m.prediction, ("eps", "x0"))
    _choice("model.sampler", m.sampler, ("ddpm", "ddim"))
    _positive("model.lr", m.lr)
    if not isinstance(m.weight_decay, int | float) or not math.isfinite(m.weight_decay) or m.weight_decay < 0:
        raise ConfigError("model.weight_decay", m.weight_decay, "must be a finite number >= 0")
    if not isinstance(m.ema, int | float) or not 0 <= m.ema < 1:
        raise ConfigError("model.ema", m.ema, "must lie in [0, 1) (0 = no averaging)")
    _int_at_least("model.classes", m.classes, 0, " (0 = unconditional)")
    if not isinstance(m.label_dropout, int | float) or not 0 <= m.label_dropout < 1:
        raise ConfigError("model.label_dropout", m.label_dropout, "must lie in [0, 1)")
    _choice("model.bias", m.bias, ("temperature", "cfg"))
    if m.bias == "cfg" and m.classes == 0:
        raise ConfigError("model.bias", "cfg", "classifier-free guidance needs a conditional model (model.classes > 0)")
    if m.bias == "cfg" and m.label_dropout == 0:
        raise ConfigError("model.label_dropout", 0, "must be > 0 with model.bias=cfg (the unconditional model)")


def _validate_classes(m: ModelConfig, d: DataConfig) -> None:
    classes = getattr(m, "classes", 0)
    if not classes:
        return
    from madloop.data import make_source

    have = make_source(d).classes
    if have == 0:
        raise ConfigError(
            "model.classes",
            classes,
            "needs a labelled truth: a mixture with >= 2 modes (ring8, grid25, mixture) or digits, mnist",
        )
    if classes != have:
        raise ConfigError(
            "model.classes", classes, f"must be 0 or the truth's number of components or classes ({have})"
        )


def _validate_finite_data(cfg: Config) -> None:
    """A finite data set must hold the real samples a generation draws (distinct images); a U-Net needs images
    whose sides its pooling divides."""
    from madloop.data import make_source

    source = make_source(cfg.data)
    size = source.size
    if size is not None and cfg.regime.n_real > size:
        raise ConfigError("regime.n_real", cfg.regime.n_real, f"must be <= the {size} training images of this data set")
    if size is not None and initial_size(cfg.regime) > size:
        raise ConfigError(
            "regime.n_initial", cfg.regime.n_initial, f"must be <= the {size} training images of this data set"
        )
    if getattr(cfg.model, "network", "mlp") != "unet":
        return
    if source.shape is None:
        raise ConfigError("model.network", "unet", "needs an image source (data=digits, mnist); use mlp for vectors")
    factor = 2 ** (len(cfg.model.channels) - 1)
    if source.shape[0] % factor or source.shape[1] % factor:
        raise ConfigError(
            "model.channels",
            list(cfg.model.channels),
            f"{len(cfg.model.channels)} levels pool by {factor}, which must divide the image side {source.shape[0]}",
        )


def _validate_guidance(g: GuidanceConfig, m: ModelConfig, d: DataConfig) -> None:
    if not isinstance(g, SimsGuidance):
        return
    if not isinstance(m, DiffusionModel):
        raise ConfigError("guidance", "sims", "needs model=diffusion (SIMS guides a diffusion sampler's score)")
    if not isinstance(g.omega, int | float) or not math.isfinite(g.omega) or g.omega < 0:
        raise ConfigError("guidance.omega", g.omega, "must be a finite number >= 0 (0 = the base model)")
    _int_at_least("guidance.n_aux", g.n_aux, 1)
    _int_at_least("guidance.aux_steps", g.aux_steps, 1)
    _choice("guidance.control", g.control, ("none", "modes"))
    if g.control == "none":
        if g.target is not None:
            raise ConfigError("guidance.target", list(g.target), "only applies to guidance.control=modes")
        return
    from madloop.data import make_source

    mix = make_source(d).mixture
    if mix is None or mix.weights.shape[0] < 2:
        raise ConfigError("guidance.control", "modes", "needs a mixture truth with >= 2 modes (ring8, grid25, mixture)")
    k = mix.weights.shape[0]
    if g.target is not None:
        t = list(g.target)
        if len(t) != k or any(not isinstance(v, int | float) or not math.isfinite(v) or v <= 0 for v in t):
            raise ConfigError("guidance.target", t, f"must be {k} finite weights > 0, one per mode of the truth")


def _validate_curation(c: CurationConfig, d: DataConfig, r: RegimeConfig) -> None:
    if not isinstance(c, KChoiceCuration):
        return
    _int_at_least("curation.k", c.k, 1, " (candidates per kept sample)")
    _positive("curation.temperature", c.temperature, " (-> 0 keeps the best of k)")
    if c.temperature < 1e-30:
        raise ConfigError("curation.temperature", c.temperature, "must be >= 1e-30 (float32 resolution)")
    if r.n_synth < 1:
        raise ConfigError("curation", "k_choice", "needs regime.n_synth >= 1 (synthetic samples to curate)")
    _choice("curation.reward", c.reward, ("mode", "point", "class"))
    from madloop.data import make_source

    source = make_source(d)
    if c.reward == "mode":
        mix = source.mixture
        if mix is None or mix.weights.shape[0] < 2:
            raise ConfigError("curation.reward", "mode", "needs a mixture truth with >= 2 modes (ring8, grid25, ...)")
        k = mix.weights.shape[0]
        if not isinstance(c.mode, int) or isinstance(c.mode, bool) or not 0 <= c.mode < k:
            raise ConfigError("curation.mode", c.mode, f"must be an integer in [0, {k - 1}] (a component of the truth)")
    elif c.reward == "point":
        t = None if c.target is None else list(c.target)
        if (
            t is None
            or len(t) != source.dim
            or any(not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) for v in t)
        ):
            raise ConfigError("curation.target", t, f"must be {source.dim} finite numbers (a point of the data space)")
    else:
        if source.classifier is None:
            raise ConfigError("curation.reward", "class", "needs an image source with a classifier (digits, mnist)")
        if not isinstance(c.label, int) or isinstance(c.label, bool) or not 0 <= c.label < source.classes:
            raise ConfigError("curation.label", c.label, f"must be an integer in [0, {source.classes - 1}] (a class)")


def _validate_sweep(cfg: Config) -> None:
    sw = cfg.sweep
    checks = (
        ("sweep.bias.lam", sw.bias.lam, lambda v: v > 0, "values > 0"),
        ("sweep.regime.real_weight", sw.regime.real_weight, lambda v: v > 0, "values > 0"),
        ("sweep.guidance.omega", sw.guidance.omega, lambda v: v >= 0, "values >= 0"),
        ("sweep.curation.temperature", sw.curation.temperature, lambda v: v >= 1e-30, "values >= 1e-30"),
    )
    for key, values, ok, what in checks:
        if values is None:
            continue
        vals = list(values)
        if not vals:
            raise ConfigError(key, vals, "give at least one value (or null for no sweep)")
        for v in vals:
            if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or not ok(v):
                raise ConfigError(key, vals, f"must be a list of finite numbers, {what}")
    if sw.guidance.omega is not None and not isinstance(cfg.guidance, SimsGuidance):
        raise ConfigError("sweep.guidance.omega", list(sw.guidance.omega), "needs guidance=sims")
    if sw.curation.temperature is not None and not isinstance(cfg.curation, KChoiceCuration):
        raise ConfigError("sweep.curation.temperature", list(sw.curation.temperature), "needs curation=k_choice")
    low_synth = 1 if isinstance(cfg.regime, FullySynthetic) else 0
    for key, values, low in (("n_real", sw.regime.n_real, 1), ("n_synth", sw.regime.n_synth, low_synth)):
        if values is None:
            continue
        vals = list(values)
        if not vals or any(not isinstance(v, int) or isinstance(v, bool) or v < low for v in vals):
            raise ConfigError(f"sweep.regime.{key}", vals, f"must be a non-empty list of integers >= {low}")


def with_count_buffers(cfg: Config) -> Config:
    """The config with ``regime.n_real`` / ``regime.n_synth`` set to the maximum of their sweep lists (the static
    buffer sizes that the swept counts mask); unchanged without a count sweep."""
    sw, changes = cfg.sweep.regime, {}
    if sw.n_real is not None:
        changes["n_real"] = max(sw.n_real)
    if sw.n_synth is not None:
        changes["n_synth"] = max(sw.n_synth)
    return replace(cfg, regime=replace(cfg.regime, **changes)) if changes else cfg


def _validate_regime(r: RegimeConfig) -> None:
    _choice("regime.pool", r.pool, POOLS)
    _int_at_least("regime.n_real", r.n_real, 1, " (generation 0 is fitted on real data)")
    low = 1 if isinstance(r, FullySynthetic) else 0
    why = " with regime=fully_synthetic (the loop would have no data)" if low else ""
    _int_at_least("regime.n_synth", r.n_synth, low, why)
    if r.subsample is not None:
        _int_at_least("regime.subsample", r.subsample, 1)
        if r.pool != "accumulate_subsample":
            raise ConfigError("regime.subsample", r.subsample, "only applies to regime.pool=accumulate_subsample")
    _positive("regime.real_weight", r.real_weight)
    if r.n_initial is not None:
        _int_at_least("regime.n_initial", r.n_initial, 1, " (null = regime.n_real)")


def initial_size(r: RegimeConfig) -> int:
    """The number of real samples generation 0 is fitted on: ``regime.n_initial``, or ``regime.n_real``."""
    return r.n_real if r.n_initial is None else r.n_initial


def validate(cfg: Config) -> Config:
    """Checks every field before anything is computed.

    Raises:
        ConfigError: naming the first invalid field, its value and what is allowed.
    """
    for group in ("data", "model", "regime", "guidance", "curation"):
        node = getattr(cfg, group)
        if type(node) not in SCHEMAS[group].values():
            raise ConfigError(group, node, "allowed: " + ", ".join(SCHEMAS[group]))
    _validate_sweep(cfg)
    cfg = with_count_buffers(cfg)
    _validate_data(cfg.data)
    _validate_regime(cfg.regime)
    _validate_model(cfg.model, cfg.regime)
    sw = cfg.sweep.regime
    if sw.n_real is not None or sw.n_synth is not None:  # the smallest swept counts must fit the model too
        smallest = replace(
            cfg.regime,
            n_real=min(sw.n_real or [cfg.regime.n_real]),
            n_synth=min(sw.n_synth or [cfg.regime.n_synth]),
        )
        _validate_model(cfg.model, smallest)
    lp = cfg.loop
    _int_at_least("loop.generations", lp.generations, 1)
    _int_at_least("loop.seeds", lp.seeds, 1)
    _int_at_least("loop.seed", lp.seed, 0)
    if lp.seed >= 2**32:
        raise ConfigError("loop.seed", lp.seed, "must be an integer < 2**32 (a 32-bit key seed)")
    _int_at_least("loop.chunk", lp.chunk, 0)
    if lp.precision not in ("float32", "float64"):
        raise ConfigError("loop.precision", lp.precision, "must be float32 or float64")
    _positive("bias.lam", cfg.bias.lam, " (1 = unbiased, < 1 colder, > 1 hotter)")
    ev = cfg.eval
    _int_at_least("eval.k", ev.k, 1)
    _int_at_least("eval.n", ev.n, ev.k + 1, f" (more than eval.k={ev.k} neighbours)")
    _int_at_least("eval.projections", ev.projections, 1)
    _int_at_least("eval.snapshots", ev.snapshots, 0)
    _int_at_least("eval.snapshot_n", ev.snapshot_n, 1)
    if not 0 < ev.mode_share <= 1:
        raise ConfigError("eval.mode_share", ev.mode_share, "must lie in (0, 1]")
    from madloop.memory import check_memory  # before the data source is built: it may hold a d x d truth

    check_memory(cfg)
    _validate_guidance(cfg.guidance, cfg.model, cfg.data)
    _validate_curation(cfg.curation, cfg.data, cfg.regime)
    if sw.n_real is not None and cfg.regime.n_initial is not None and isinstance(cfg.regime, FullySynthetic):
        raise ConfigError(
            "sweep.regime.n_real",
            list(sw.n_real),
            "has no effect with regime.n_initial in the fully synthetic loop (generation 0 fits n_initial samples)",
        )
    _validate_classes(cfg.model, cfg.data)
    _validate_finite_data(cfg)
    if ev.metrics is not None:
        from madloop.metrics import available_metrics

        avail = available_metrics(cfg)
        if len(ev.metrics) == 0:
            raise ConfigError("eval.metrics", [], "name at least one metric (or null for all that apply)")
        if not all(isinstance(name, str) for name in ev.metrics):
            raise ConfigError("eval.metrics", list(ev.metrics), "must be a list of metric names")
        for name in ev.metrics:
            if name not in avail:
                raise ConfigError(
                    "eval.metrics", list(ev.metrics), f"unknown metric {name!r}; known: " + ", ".join(avail)
                )
            if avail[name] is not None:
                raise ConfigError("eval.metrics", list(ev.metrics), f"{name!r} {avail[name]}")
    return cfg
