"""Curation of the synthetic samples before they re-enter training (``curation=``): K-choice and a verifier.

K-choice curation (Ferbach et al. 2024, "Self-Consuming Generative Models with Curated Data Provably Optimize
Human Preferences"): a user shown k samples of the current model keeps one, sample j with probability
softmax(r(x_j) / temperature)_j (a Bradley-Terry / Plackett-Luce choice under the reward r). Retraining on curated
samples alone maximises the expected reward and concentrates the model on the reward's maximisers; mixing real
data back in keeps it close to the data distribution (their Theorems 2.1 and 2.4).

In the loop, generation g - 1 draws k * n_synth samples and the curation keeps n_synth of them (one per group of
k consecutive samples); the evaluation draws the model's own, uncurated samples, so the ``reward`` metric is the
model's expected reward E_{p_g}[r(x)].

Verification (Feng et al. 2024, "Beyond Model Collapse: Scaling Up with Synthesized Data Requires Verification"):
a verifier accepts or rejects each synthetic sample; the training set keeps its size, filled from the accepted
samples of ``draws`` * n_synth candidates (``VerifierCuration``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import rng
from madloop.data import DataSource
from madloop.precision import float_dtype
from madloop.types import Data, Key, Knobs


@dataclass(frozen=True)
class NoCuration(C.CurationConfig):
    """Every synthetic sample enters the pool."""


@dataclass(frozen=True)
class KChoiceCuration(C.CurationConfig):
    """K-choice curation (Ferbach et al. 2024, after the Bradley-Terry / Plackett-Luce choice model): each of the
    ``regime.n_synth`` synthetic samples is chosen from ``k`` fresh model samples, sample j with probability
    softmax(r(x_j) / temperature). Evaluation samples (the model's own distribution) are not curated.

    Attributes:
        k: candidates per kept sample (1 = no curation); the model draws k * n_synth samples per generation.
        temperature: of the choice; -> 0 keeps the best of k, -> inf picks uniformly. Traced (vmappable with
            ``sweep.curation.temperature``).
        reward: ``mode``: minus the distance to the centre of component ``mode`` of a mixture truth;
            ``point``: minus the distance to ``target``; ``class``: the log-probability of class ``label``
            under the feature classifier of an image source (data=digits, mnist, cifar10).
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


@dataclass(frozen=True)
class VerifierCuration(C.CurationConfig):
    """A verifier keeps or drops each synthetic sample (Feng et al. 2024). Generation g - 1 draws ``draws`` x
    n_synth candidates; the n_synth slots are filled with the accepted ones in the order they were drawn, and when
    fewer than n_synth are accepted (the cap), the remaining slots take the first rejected candidates, in order:
    the training set keeps its size, and the metric ``unfilled`` reports the share of slots the cap left to
    rejected samples (0 = every slot holds an accepted sample).

    The verdict, by data source:
    - a regression truth (``data=linear``): accept when |model label - w* . x| <= ``tolerance``; the verifier
      sees the true label plus N(0, noise^2).
    - an image source: accept when the feature classifier's log-probability of the sample's class (its label
      column for a class-conditional family, else the most likely class) exceeds the threshold; noise adds
      N(0, noise^2) to it (nats).
    - every other source with a known density (Gaussian, mixtures; moons, swiss roll and circles by quadrature):
      accept when the truth's log-density exceeds the threshold; noise adds N(0, noise^2) to it (nats).
    Thresholding the truth's density keeps the likely samples and drops the tails: like curation, it concentrates
    the training distribution (docs/results.md).

    Attributes:
        draws: candidates per slot (a static multiple: the model draws draws x n_synth samples per generation).
        noise: the verifier's noise sd (0 = the noiseless verdict). Traced (``sweep.curation.noise``).
        tolerance: the label verifier's tolerance (``data=linear``).
        threshold: the score a sample must exceed (log-density, or log-probability of its class); null = the
            truth's ``quantile`` of its own score (from 16384 truth samples, or an image set's training images):
            the noiseless verifier then rejects that share of real samples.
        quantile: the threshold's quantile when ``threshold`` is null.
    """

    draws: int = 2
    noise: float = 0.0
    tolerance: float = 1.0
    threshold: float | None = None
    quantile: float = 0.05


class Curation(NamedTuple):
    """A curation rule as pure functions.

    Attributes:
        k: model samples drawn per kept sample (1 = no curation: ``select`` returns its input).
        select: ``select(key, x, knobs) -> (x[::k]-shaped, report)`` keeps n of the rows of x [k n, d'] (d' >= d: a
            conditional family's label column rides along), with the traced knobs (the temperature, the verifier's
            noise); report is {name: scalar} for the names in ``report``.
        reward: ``reward(x) -> [n]`` of samples x [n, d] (the data columns only), or None without curation.
        report: the names of what ``select`` reports of each generation's candidates (loop metrics, NaN at
            generation 0, which has none).
    """

    k: int
    select: Callable[[Key, Data, Knobs], tuple[Data, dict[str, jax.Array]]]
    reward: Callable[[Data], jax.Array] | None
    report: tuple[str, ...] = ()


def k_choice(key: Key, x: Data, rewards: jax.Array, k: int, temperature: jax.Array | float) -> Data:
    """Keeps one of every k consecutive rows, row j of a group with probability softmax(rewards / temperature)_j.

    Args:
        key: the choice's key.
        x: [k n, d'] candidates, in n groups of k consecutive rows.
        rewards: [k n] their rewards.
        k: group size (static).
        temperature: > 0; small values keep the group's best row (exact ties: one of them at random).

    Returns:
        [n, d'] the chosen rows.
    """
    n = x.shape[0] // k
    r = rewards.reshape(n, k)
    # The same softmax with the group's best at 0: large rewards over a small temperature keep float32 resolution.
    logits = (r - jnp.max(r, axis=1, keepdims=True)) / temperature
    choice = jax.random.categorical(key, logits, axis=1)  # [n]
    return jnp.take_along_axis(x.reshape(n, k, x.shape[1]), choice[:, None, None], axis=1)[:, 0]


def distance_reward(centre: jax.Array) -> Callable[[Data], jax.Array]:
    """r(x) = -||x - centre|| for x [n, d] (the reward of ``reward=mode`` and ``reward=point``)."""

    def reward(x: Data) -> jax.Array:
        return -jnp.sqrt(jnp.sum((x - centre) ** 2, axis=1))

    return reward


def class_reward(source: DataSource, label: int) -> Callable[[Data], jax.Array]:
    """r(x) = log p(label | x) under the image source's feature classifier (its weights are constants of the
    compiled program)."""
    clf = source.classifier()

    def reward(x: Data) -> jax.Array:
        logits = clf.apply(clf.params, x)[1]
        return jax.nn.log_softmax(logits, axis=1)[:, label]

    return reward


def make_curation(cfg: C.CurationConfig, source: DataSource) -> Curation:
    """The curation rule of a validated ``curation`` config, for the data source (its registered ``build``)."""
    return C.option_of("curation", cfg)[1].build(cfg, source)


def no_curation(cfg: NoCuration, source: DataSource) -> Curation:
    """Every synthetic sample enters the pool."""
    del cfg, source

    def select(key: Key, x: Data, knobs: Knobs) -> tuple[Data, dict[str, jax.Array]]:
        del key, knobs
        return x, {}

    return Curation(1, select, None)


def k_choice_curation(cfg: KChoiceCuration, source: DataSource) -> Curation:
    """K-choice curation under the configured reward."""
    dim = source.dim
    if cfg.reward == "mode":
        reward = distance_reward(source.mixture.means[cfg.mode])
    elif cfg.reward == "point":
        reward = distance_reward(jnp.asarray(cfg.target, float_dtype()))
    else:
        reward = class_reward(source, cfg.label)

    def select(key: Key, x: Data, knobs: Knobs) -> tuple[Data, dict[str, jax.Array]]:
        return k_choice(key, x, reward(x[:, :dim]), cfg.k, knobs["temperature"]), {}

    return Curation(cfg.k, select, reward)


def check_k_choice(c: KChoiceCuration) -> None:
    """Field checks of ``curation=k_choice``."""
    C.int_at_least("curation.k", c.k, 1, " (candidates per kept sample)")
    C.positive("curation.temperature", c.temperature, " (-> 0 keeps the best of k)")
    if c.temperature < 1e-30:
        raise C.ConfigError("curation.temperature", c.temperature, "must be >= 1e-30 (float32 resolution)")
    C.choice("curation.reward", c.reward, ("mode", "point", "class"))


def fits_k_choice(c: KChoiceCuration, cfg: C.Config, parts) -> None:
    """Synthetic samples to curate, and a reward the data source defines."""
    if cfg.regime.n_synth < 1:  # (a count sweep's count 0 is a baseline with no synthetic data: allowed)
        raise C.ConfigError("curation", "k_choice", "needs regime.n_synth >= 1 (synthetic samples to curate)")
    source = parts.source
    if source.tokens is not None:  # a distance between token ids is no reward
        raise C.ConfigError("curation", "k_choice", "needs continuous data or images (its rewards are distances)")
    if c.reward == "mode":
        mix = source.mixture
        if mix is None or mix.weights.shape[0] < 2:
            raise C.ConfigError("curation.reward", "mode", "needs a mixture truth with >= 2 modes (ring8, grid25, ...)")
        k = mix.weights.shape[0]
        if not C.is_int(c.mode) or not 0 <= c.mode < k:
            raise C.ConfigError(
                "curation.mode", c.mode, f"must be an integer in [0, {k - 1}] (a component of the truth)"
            )
    elif c.reward == "point":
        t = None if c.target is None else list(c.target)
        if t is None or len(t) != source.dim or not all(C.is_number(v) for v in t):
            raise C.ConfigError(
                "curation.target", t, f"must be {source.dim} finite numbers (a point of the data space)"
            )
    else:
        if source.classifier is None:
            raise C.ConfigError(
                "curation.reward", "class", "needs an image source with a classifier (digits, mnist, cifar10)"
            )
        if not C.is_int(c.label) or not 0 <= c.label < source.classes:
            raise C.ConfigError("curation.label", c.label, f"must be an integer in [0, {source.classes - 1}] (a class)")


# ------------------------------------------------------------------------------------------------- the verifier

VERIFIER_REPORT = ("kept_share", "false_accept", "false_reject", "unfilled")
THRESHOLD_DRAWS = 1 << 14  # truth samples that locate a quantile threshold (its sd ~ 0.002 at the 5% quantile)


def fill_slots(x: Data, accepted: jax.Array, n: int) -> Data:
    """[n, d']: the accepted rows of x [m, d'] in their order, then (when fewer than n are accepted) the rejected ones
    in theirs. Example: accepted (F, T, F, T), n = 3 -> rows 1, 3, 0."""
    order = jnp.argsort(jnp.logical_not(accepted), stable=True)
    return x[order[:n]]


def verdict_report(
    clean: jax.Array, noisy: jax.Array, slots: jax.Array, live: jax.Array | None = None
) -> dict[str, jax.Array]:
    """The verifier's report on m candidates: the share it accepts (``kept_share``), its error rates against the
    noiseless verdict ``clean`` [m] (``false_accept``: accepted among those the noiseless verdict rejects;
    ``false_reject``: rejected among those it accepts; NaN where there are none), and ``unfilled``: the share of the
    ``slots`` training slots left to rejected candidates (the cap hit). ``live`` [m] (default all): the candidates
    that exist (a count sweep's smaller counts verify only the first draws x count of the buffer's)."""
    f = float_dtype()
    live = jnp.ones_like(clean) if live is None else live
    clean, noisy = clean & live, noisy & live
    bad, good = jnp.sum(live & ~clean), jnp.sum(clean)
    accepted = jnp.sum(noisy)
    return {
        "kept_share": accepted.astype(f) / jnp.maximum(jnp.sum(live), 1).astype(f),
        "false_accept": jnp.where(bad > 0, jnp.sum(noisy & ~clean) / jnp.maximum(bad, 1), jnp.nan).astype(f),
        "false_reject": jnp.where(good > 0, jnp.sum(~noisy & clean) / jnp.maximum(good, 1), jnp.nan).astype(f),
        "unfilled": (jnp.maximum(slots - accepted, 0) / jnp.maximum(slots, 1)).astype(f),
    }


def label_margin(source: DataSource, tolerance: float) -> Callable[[Data, jax.Array], jax.Array]:
    """m(x, e) = tolerance - |y - (w* . x + e)| for rows [x, y] of a regression truth: accepted where m >= 0."""
    truth, d = source.linear, source.dim - 1

    def margin(x: Data, e: jax.Array) -> jax.Array:
        return tolerance - jnp.abs(x[:, d] - (x[:, :d] @ truth.weights + e))

    return margin


def score_margin(score: Callable[[Data], jax.Array], threshold: jax.Array | float) -> Callable:
    """m(x, e) = score(x) + e - threshold: accepted where m >= 0 (strictly above the threshold before the noise)."""

    def margin(x: Data, e: jax.Array) -> jax.Array:
        return score(x) + e - threshold

    return margin


def verifier_score(source: DataSource) -> Callable[[Data], jax.Array]:
    """score(x) [n] of rows x [n, d'] (d' >= d): the log-probability of the sample's class under an image source's
    feature classifier (its label column when present, else its most likely class), else the truth's log-density."""
    dim = source.dim
    if source.classifier is not None:
        clf = source.classifier()

        def score(x: Data) -> jax.Array:
            logp = jax.nn.log_softmax(clf.apply(clf.params, x[:, :dim])[1], axis=1)
            if x.shape[1] > dim:  # a class-conditional family's rows carry their label
                return jnp.take_along_axis(logp, x[:, dim, None].astype(jnp.int32), axis=1)[:, 0]
            return jnp.max(logp, axis=1)

        return score

    def log_density(x: Data) -> jax.Array:
        return source.log_prob(x[:, :dim])

    return log_density


def truth_quantile(source: DataSource, score: Callable[[Data], jax.Array], q: float) -> float:
    """The q-quantile of the truth's own score over THRESHOLD_DRAWS truth samples (an image set's training images,
    at most its size), drawn with a fixed key."""
    n = THRESHOLD_DRAWS if source.size is None else min(THRESHOLD_DRAWS, source.size)
    with jax.ensure_compile_time_eval():  # (a build inside a trace still computes it once, here)
        scores = jax.jit(lambda key: score(source.sample(key, n)))(jax.random.key(20240521))
        return float(jnp.quantile(scores, q))


def verifier_curation(cfg: VerifierCuration, source: DataSource) -> Curation:
    """The verifier of the source (a label check, the classifier's confidence, or the truth's log-density)."""

    @functools.cache
    def verdict() -> Callable[[Data, jax.Array], jax.Array]:
        # Built on first use (when select is first traced), so validating a config does not compute the threshold.
        if source.linear is not None:
            return label_margin(source, cfg.tolerance)
        score = verifier_score(source)
        threshold = cfg.threshold if cfg.threshold is not None else truth_quantile(source, score, cfg.quantile)
        return score_margin(score, threshold)

    draws = cfg.draws

    def select(key: Key, x: Data, knobs: Knobs) -> tuple[Data, dict[str, jax.Array]]:
        margin = verdict()
        e = knobs["verifier_noise"] * rng.normal(key, (x.shape[0],), x.dtype)
        clean, noisy = margin(x, jnp.zeros_like(e)) >= 0, margin(x, e) >= 0
        slots = jnp.minimum(knobs["n_synth"], x.shape[0] // draws)  # the slots that get weight (a count sweep's mask)
        # A count sweep's count c verifies the first draws x c candidates, as a run with n_synth = c draws them:
        # ranking all of the buffer's would curate harder than that run (and report no unfilled slot).
        live = jnp.arange(x.shape[0]) < draws * slots
        accepted = noisy & live
        return fill_slots(x, accepted, x.shape[0] // draws), verdict_report(clean, noisy, slots, live)

    return Curation(draws, select, None, VERIFIER_REPORT)


def check_verifier(c: VerifierCuration) -> None:
    """Field checks of ``curation=verifier``."""
    C.int_at_least("curation.draws", c.draws, 1, " (candidates per training slot)")
    C.non_negative("curation.noise", c.noise, " (0 = the noiseless verdict)")
    C.positive("curation.tolerance", c.tolerance, " (the label verifier's tolerance)")
    if c.threshold is not None and not C.is_number(c.threshold):
        raise C.ConfigError("curation.threshold", c.threshold, "must be a finite number (or null: the quantile)")
    if not (C.is_number(c.quantile) and 0 < c.quantile < 1):
        raise C.ConfigError("curation.quantile", c.quantile, "must lie in (0, 1)")


def fits_verifier(c: VerifierCuration, cfg: C.Config, parts) -> None:
    """Synthetic samples to verify, and a verdict the data source defines."""
    del c
    if cfg.regime.n_synth < 1:  # (a count sweep's count 0 is a baseline with no synthetic data: allowed)
        raise C.ConfigError("curation", "verifier", "needs regime.n_synth >= 1 (synthetic samples to verify)")
    source = parts.source
    if source.linear is None and source.classifier is None and source.log_prob is None:
        raise C.ConfigError(
            "curation",
            "verifier",
            "needs a truth with a log-density (gaussian, ring8, grid25, mixture, rosenbrock; moons, swissroll, "
            "circles with data.noise > 0), data=linear or an image source",
        )


C.register("curation", "none", NoCuration, build=no_curation)
C.register("curation", "k_choice", KChoiceCuration, build=k_choice_curation, check=check_k_choice, fits=fits_k_choice)
C.register("curation", "verifier", VerifierCuration, build=verifier_curation, check=check_verifier, fits=fits_verifier)
