"""Benchmark: each neural family's training steps in madloop against a PyTorch reference batched over seeds.

Usage: pip install -e ".[bench]"  (PyTorch, for the reference), then
       python benchmarks/family_steps.py [--families flow gan flow_matching edm] [--seeds 8 64] [--steps 20]
                                         [--replay-steps 10] [--repeats 2] [--ref-repeats 2] [--compiled]

For each family (``madloop/models/flow.py``, ``gan.py``, ``flow_matching.py``, ``edm.py``) on 2-D data (the ring of
8, n = 512, uniform weights), batch 128 and the family's default MLP (flow: 8 GLOW steps with 2 x 64 coupling
MLPs; WGAN-GP: generator and critic 2 x 128, 5 critic updates per generator update; flow matching and EDM: 3 x 128
denoisers with 32 time features), both sides run a fit of ``steps`` training steps of S seeds at once from the
same initial weights (the family's own ``init``, per seed):

- madloop: the family's own ``train`` (the function a generation's fit calls), ``jax.jit(jax.vmap(...))`` over
  seeds, returning the final parameters and the loss curves; the first call (compilation included) and the median
  of ``repeats`` further calls.
- PyTorch: what a competent user writes for many seeds: every seed's weights stacked on a leading axis, batched
  matmuls (``torch.baddbmm``), the optimiser as elementwise updates of the stacked tensors (flow, flow matching,
  EDM: per-seed global-norm clipping at 1 and AdamW with the cosine step-size decay; the GAN: Adam, constant step
  size, Algorithm 1's n_critic critic updates with the gradient penalty by double backward), the weight EMA, and
  the minibatch draws from one ``torch.Generator``. Eager: the median of ``ref_repeats`` calls, at the faster of 1
  and the default number of intra-op threads (chosen by a few warm-up steps each; under load OpenMP's default is
  many times slower on these small matrices). With ``compiled``: the loss and update functions through
  ``torch.compile``, first call and the median of ``repeats`` further calls.

Two checks that both sides compute the same thing:

- **replay**: the PyTorch step is fed madloop's own minibatch draws (the family's key derivation replayed with
  ``madloop.rng.normal`` and ``training.row_sampler``) for the first ``replay_steps`` steps of the timed fit, from
  the same initial weights; the per-step losses must agree to ``REPLAY_TOL`` (relative). A reference with another
  learning rate (even 10% off), loss or optimiser fails it within a few steps.
- **agreement**: the timed runs (independent draws on each side) end at the same mean loss over their last
  quarter of steps, mean ± SE over seeds (benchmarks/agreement.py; beyond 4.5 SE the runner reports DISAGREE).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

FAMILIES = ("flow", "gan", "flow_matching", "edm")
DEFAULT_THREADS = os.cpu_count() or 1  # PyTorch's default intra-op threads (one per core)
N_DATA, BATCH = 512, 128
REPLAY_TOL = 1e-3  # |loss_ours - loss_ref| / max(|loss_ours|, 1), worst over the replayed steps and seeds


# ----------------------------------------------------------------------------------------- madloop's side


@dataclass
class Family:
    """One family's madloop objects: its config, its ``train``, per-seed initial params and the loss read out."""

    name: str
    cfg: object
    train: Callable
    init: Callable
    curves: tuple[str, ...]  # the names of the loss curves train returns (the checks compare them)

    def losses(self, out) -> dict[str, np.ndarray]:
        """train's second output -> {name: [S, steps]}."""
        if self.name == "gan":
            return {"critic": np.asarray(out.critic), "gen": np.asarray(out.gen)}
        return {self.curves[0]: np.asarray(out)}


def make_family(name: str, tiny: bool = False) -> Family:
    """The family's config at the benchmark's size (``tiny``: the test's size) and its real training function."""
    from madloop.models import edm, flow, flow_matching, gan

    width = 16 if tiny else None
    if name == "flow":
        cfg = flow.FlowModel(batch=BATCH, **({"width": width, "layers": 2} if tiny else {}))
        fam = flow.flow_family(cfg)
        return Family(name, cfg, fam.train, fam.model.init, ("nll",))
    if name == "gan":
        cfg = gan.GANModel(network="mlp", batch=BATCH, **({"width": width, "latent": 4, "n_critic": 2} if tiny else {}))
        fam = gan.gan_family(cfg)
        return Family(name, cfg, fam.train, fam.model.init, ("critic", "gen"))
    small = {"width": width, "depth": 2, "time_features": 8} if tiny else {}
    if name == "flow_matching":
        cfg = flow_matching.FlowMatchingModel(batch=BATCH, **small)
        fam = flow_matching.flow_matching_family(cfg)
        return Family(name, cfg, fam.train, fam.model.init, ("cfm",))
    if name == "edm":
        cfg = edm.EDMModel(batch=BATCH, **small)
        fam = edm.edm_family(cfg)
        return Family(name, cfg, fam.train, fam.model.init, ("edm",))
    raise ValueError(f"unknown family {name!r}; one of {FAMILIES}")


def describe(fam: Family, steps: int) -> str:
    """The row's case: the family, its network and the fit's length."""
    c = fam.cfg
    net = {
        "flow": f"GLOW, {getattr(c, 'layers', 0)} steps, coupling MLP {c.depth} x {c.width}",
        "gan": f"WGAN-GP, MLPs {c.depth} x {c.width}, {getattr(c, 'n_critic', 0)} critic updates / step",
        "flow_matching": f"CFM, MLP {c.depth} x {c.width}",
        "edm": f"EDM, MLP {c.depth} x {c.width}",
    }[fam.name]
    return f"{fam.name} ({net}), batch {BATCH}, {steps} steps"


def data() -> tuple[np.ndarray, np.ndarray]:
    """The training set both sides share: n samples of the ring of 8 [n, 2] (float32) and uniform weights [n]."""
    from benchmarks.references import ring8

    return ring8(np.random.default_rng(0), N_DATA).astype(np.float32), np.ones(N_DATA, np.float32)


class Setup(NamedTuple):
    """What both sides share for one (family, seeds): the family, the training set (JAX and numpy), per-seed
    training keys and per-seed initial weights (the family's own ``init``)."""

    fam: Family
    x: object
    w: object
    x_np: np.ndarray
    keys: object
    params: object


@functools.cache
def setup(name: str, seeds: int, tiny: bool = False) -> Setup:
    """The ``Setup`` of a case; cached, with ``program``, so that a second check of a case reuses its program."""
    import jax

    fam = make_family(name, tiny)
    x_np, w_np = data()
    x, w = jax.numpy.asarray(x_np), jax.numpy.asarray(w_np)
    init_keys, keys = jax.random.split(jax.random.key(0), seeds), jax.random.split(jax.random.key(1), seeds)
    return Setup(fam, x, w, x_np, keys, jax.vmap(fam.init, in_axes=(0, None, None))(init_keys, x, w))


@functools.cache
def program(name: str, seeds: int, tiny: bool, steps: int) -> Callable:
    """``run(keys [S], params) -> (params, losses)``: the family's ``train`` of ``steps`` steps, jit(vmap) over seeds.
    The final parameters are returned too, so that nothing of the step (the EMA, the optimiser state) is dead code."""
    import jax

    s = setup(name, seeds, tiny)
    return jax.jit(jax.vmap(lambda key, params: s.fam.train(key, params, s.x, s.w, steps)))


def replay_draws(s: Setup, steps: int) -> list[tuple[np.ndarray, ...]]:
    """The minibatch draws of madloop's ``train`` for steps 0..steps-1 of every seed, replayed with the family's key
    derivation (see each family's ``train``): a list over steps of per-seed arrays [S, ...]."""
    import jax

    from madloop import rng
    from madloop.models import edm
    from madloop.models import training as T

    fam, x, keys = s.fam, s.x, s.keys
    cfg, rows, b = fam.cfg, T.row_sampler(s.w), BATCH

    def one(key, i):
        k = jax.random.fold_in(key, i)
        if fam.name == "flow":
            return (x[rows(k, b)],)
        if fam.name == "gan":
            parts = []
            for j in range(cfg.n_critic):
                k_idx, k_z, k_eps = jax.random.split(jax.random.fold_in(k, j), 3)
                parts += [x[rows(k_idx, b)], rng.normal(k_z, (b, cfg.latent)), jax.random.uniform(k_eps, (b, 1))]
            return (*parts, rng.normal(jax.random.fold_in(k, cfg.n_critic), (b, cfg.latent)))
        if fam.name == "flow_matching":
            k_idx, k_t, k_noise = jax.random.split(k, 3)
            x1 = x[rows(k_idx, b)]
            return rng.normal(k_noise, x1.shape), x1, jax.random.uniform(k_t, (b,))
        k_idx, k_sigma, k_noise, _ = jax.random.split(k, 4)  # edm
        y = x[rows(k_idx, b)]
        return y, edm.PRECONDITIONINGS[cfg.precond](cfg).sample_sigma(k_sigma, (b,)), rng.normal(k_noise, y.shape)

    per_step = jax.jit(jax.vmap(one, in_axes=(0, None)))
    return [tuple(np.asarray(a) for a in per_step(keys, i)) for i in range(steps)]


# ----------------------------------------------------------------------------------------- PyTorch's side


class TorchFamily:
    """A family's training step in PyTorch, every seed at once: stacked weights [S, ...], batched matmuls.

    ``params`` are madloop's initial weights (numpy, leading seed axis), so both sides start from the same point.
    ``run(steps, draws, stop)`` trains a fit of ``steps`` steps (the first ``stop`` of them, if given) and returns
    the per-step losses {name: [S, steps]}; ``draws`` is a ``torch.Generator`` (the timed runs: the reference draws
    its own minibatches) or madloop's replayed draws.
    ``lr_factor`` multiplies the learning rate (the test's deliberately wrong reference); ``device``: where the
    tensors live (``cuda`` on a GPU machine, as madloop's arrays).
    """

    def __init__(
        self, fam: Family, params, x: np.ndarray, compiled: bool = False, lr_factor: float = 1.0, device: str = "cpu"
    ):
        import torch

        self.torch, self.fam, self.cfg, self.device = torch, fam, fam.cfg, torch.device(device)
        with self.device:
            self._setup(params, x, compiled, lr_factor)

    def _setup(self, params, x: np.ndarray, compiled: bool, lr_factor: float) -> None:
        torch, fam = self.torch, self.fam
        self.x = torch.tensor(x)
        self.lr = fam.cfg.lr * lr_factor
        self.compile_error = None
        self.start = self._tensors(params)
        self.seeds = self.start[0][0].shape[0]
        half = (getattr(fam.cfg, "time_features", 2)) // 2
        self.freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)
        self.loss, self.update = self._loss_fn(), self._update
        if compiled:
            try:
                self.loss, self.update = torch.compile(self.loss), torch.compile(self._update)
            except Exception as e:  # noqa: BLE001  (reported in the table, not hidden)
                self.compile_error = f"{type(e).__name__}: {e}"

    # -- weights: madloop's pytrees -> lists of stacked tensors (one list per trained network)

    def _tensors(self, params) -> list[list]:
        """[[net tensors]] (flow, flow matching, EDM) or [[generator], [critic]] (GAN), each [S, ...] float32."""
        torch = self.torch

        def dense(tree: dict) -> list:  # Flax Dense_0..Dense_k: kernel [S, in, out], bias [S, 1, out]
            out = []
            for i in range(len(tree)):
                layer = tree[f"Dense_{i}"]
                out += [np.asarray(layer["kernel"]), np.asarray(layer["bias"])[:, None, :]]
            return out

        if self.fam.name == "flow":
            net = params.net
            nets = [[np.asarray(a) for a in (net.loc, net.log_scale, *net.mixing)]]
            nets[0] += [np.asarray(a) for pair in net.coupling for a in pair]
        elif self.fam.name == "gan":
            nets = [dense(params.gen), dense(params.critic)]
        else:
            nets = [dense(params.net)]
        return [[torch.tensor(a, dtype=torch.float32) for a in net] for net in nets]

    # -- networks on [S, B, in]

    def mlp(self, params: list, h, act: Callable):
        for i in range(0, len(params), 2):
            h = self.torch.baddbmm(params[i + 1], h, params[i])
            if i + 2 < len(params):
                h = act(h)
        return h

    def embed(self, t, scale: float):  # t [S, B] -> [S, B, time_features]
        ang = scale * t[..., None] * self.freqs
        return self.torch.cat([self.torch.sin(ang), self.torch.cos(ang)], dim=-1)

    def flow_log_prob(self, p: list, x):
        """log p(x) [S, B] of x [S, B, d] under the stacked GLOW steps (madloop/models/flow.py, data to latent)."""
        torch, F = self.torch, self.torch.nn.functional
        loc, log_scale, lower, upper, log_s, *mlp = p
        d, k, clamp = x.shape[-1], x.shape[-1] // 2, float(self.cfg.clamp)
        eye = torch.eye(d)
        h, log_det = x, (log_s.sum(-1) - log_scale.sum(-1)).sum(-1)[:, None]  # actnorm and mixing: [S, 1]
        for layer in range(loc.shape[1]):
            h = (h - loc[:, layer, None]) * torch.exp(-log_scale[:, layer, None])
            lo = torch.tril(lower[:, layer], -1) + eye
            up = torch.triu(upper[:, layer], 1) + torch.diag_embed(torch.exp(log_s[:, layer]))
            h = torch.bmm(h, (lo @ up).transpose(1, 2)).flip(-1)  # P L U h, P the reversal
            a, b = h[..., :k], h[..., k:]
            raw, shift = self.mlp([q[:, layer] if q.dim() == 4 else q[:, layer, None] for q in mlp], a, F.silu).chunk(
                2, dim=-1
            )
            s = clamp * torch.tanh(raw / clamp)
            h = torch.cat([a, b * torch.exp(s) + shift], dim=-1)
            log_det = log_det + s.sum(-1)
        return -0.5 * (h**2).sum(-1) - 0.5 * d * math.log(2 * math.pi) + log_det

    # -- losses: per-seed values [S] (their sum has per-seed gradients)

    def _loss_fn(self) -> Callable:
        torch, F, cfg = self.torch, self.torch.nn.functional, self.cfg
        name = self.fam.name
        if name == "flow":
            return lambda p, batch: -self.flow_log_prob(p, batch[0]).mean(-1) / batch[0].shape[-1]
        if name == "flow_matching":

            def cfm(p, batch):
                x0, x1, t = batch
                shrink = 1.0 - cfg.sigma_min
                xt, ut = (1 - shrink * t[..., None]) * x0 + t[..., None] * x1, x1 - shrink * x0
                v = self.mlp(p, torch.cat([xt, self.embed(t, 1000.0)], -1), F.silu)
                return ((v - ut) ** 2).mean(dim=(1, 2))

            return cfm
        if name == "edm":
            sd2 = cfg.sigma_data**2

            def edm(p, batch):  # Karras et al. Table 1, EDM column; eq. 8's form (madloop/models/edm.py)
                y, sigma, noise = batch
                x = y + sigma[..., None] * noise
                v = sigma**2 + sd2
                c_skip, c_out, c_in, c_noise = sd2 / v, sigma * cfg.sigma_data / v.sqrt(), 1 / v.sqrt(), sigma.log() / 4
                target = (y - c_skip[..., None] * x) / c_out[..., None]
                scale = v / (sigma * cfg.sigma_data) ** 2 * c_out**2
                f = self.mlp(p, torch.cat([c_in[..., None] * x, self.embed(c_noise, 1.0)], -1), F.silu)
                return (scale[..., None] * (f - target) ** 2).mean(dim=(1, 2))

            return edm
        gp = 0.1 if cfg.gp_weight is None else float(cfg.gp_weight)  # vectors: madloop's default 0.1

        def critic_loss(critic, real, fake, eps):  # Algorithm 1, line 7; returns (loss [S], Wasserstein [S])
            score = lambda h: self.mlp(critic, h, lambda z: F.leaky_relu(z, 0.2))  # noqa: E731
            w_est = score(real).mean(dim=(1, 2)) - score(fake).mean(dim=(1, 2))
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_()
            (grad,) = torch.autograd.grad(score(x_hat).sum(), x_hat, create_graph=True)
            penalty = ((torch.sqrt((grad**2).sum(-1) + 1e-12) - 1.0) ** 2).mean(-1)
            return -w_est + gp * penalty, w_est

        return critic_loss

    # -- the optimisers: per-seed global-norm clipping (optax.clip_by_global_norm), Adam(W), cosine decay, EMA

    def _update(self, params, grads, m, v, lr, bc1, bc2, b1: float, b2: float, clip: bool):
        torch = self.torch
        with torch.no_grad():
            if clip:
                sq = sum((g * g).sum(dim=tuple(range(1, g.dim()))) for g in grads)  # [S]
                norm = sq.sqrt()
                coef = torch.where(norm < 1.0, torch.ones_like(norm), 1.0 / norm)
                grads = [g * coef.view(-1, *([1] * (g.dim() - 1))) for g in grads]
            for p, g, mi, vi in zip(params, grads, m, v, strict=True):
                mi.mul_(b1).add_(g, alpha=1 - b1)
                vi.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(lr * (mi / bc1) / ((vi / bc2).sqrt() + 1e-8))

    def generator(self, seed: int):
        """A torch.Generator on the reference's device, seeded."""
        return self.torch.Generator(device=self.device).manual_seed(seed)

    def run(self, steps: int, draws, stop: int | None = None) -> dict[str, np.ndarray]:
        with self.device:
            return self._run(steps, draws, stop)

    def _run(self, steps: int, draws, stop: int | None) -> dict[str, np.ndarray]:
        torch = self.torch
        nets = [[t.clone().requires_grad_() for t in net] for net in self.start]
        state = [([torch.zeros_like(t) for t in net], [torch.zeros_like(t) for t in net]) for net in nets]
        ema = [t.detach().clone() for t in nets[0]]  # the GAN: the generator's EMA
        replay = not isinstance(draws, torch.Generator)
        decay_max = float(self.cfg.ema)
        out: dict[str, list] = {}
        for i in range(steps if stop is None else stop):
            batch = [torch.tensor(a) for a in draws[i]] if replay else self._draw(draws)
            # the learning-rate factor: cosine decay over the fit (the GAN: constant, Algorithm 1)
            decay_lr = 1.0 if self.fam.name == "gan" else 0.5 * (1 + math.cos(math.pi * i / steps))
            lr = torch.tensor(self.lr * decay_lr)
            if self.fam.name == "gan":
                self._gan_step(nets, state, i, batch, lr, out)
            else:
                loss = self.loss(nets[0], batch)
                grads = torch.autograd.grad(loss.sum(), nets[0])
                self._adam(nets[0], grads, state[0], lr, i + 1, 0.9, 0.999, clip=True)
                out.setdefault(self.fam.curves[0], []).append(loss.detach())
            decay = min(decay_max, (1.0 + i) / (10.0 + i))
            with torch.no_grad():
                torch._foreach_lerp_(ema, [t.detach() for t in nets[0]], 1 - decay)
        return {k: torch.stack(v, 1).cpu().numpy() for k, v in out.items()}

    def _adam(self, params, grads, state, lr, count: int, b1: float, b2: float, clip: bool) -> None:
        """One Adam(W) update (no weight decay) at step ``count`` (1-based: the bias corrections' exponent)."""
        bc1, bc2 = self.torch.tensor(1 - b1**count), self.torch.tensor(1 - b2**count)
        self.update(params, grads, *state, lr, bc1, bc2, b1, b2, clip)

    def _gan_step(self, nets, state, i, batch, lr, out) -> None:
        """Algorithm 1: n_critic critic updates (each against fresh generator samples), then a generator update."""
        torch, F, cfg = self.torch, self.torch.nn.functional, self.cfg
        gen, critic = nets
        b1, b2 = cfg.beta1, cfg.beta2
        relu = F.relu
        for j in range(cfg.n_critic):
            real, z, eps = batch[3 * j : 3 * j + 3]
            with torch.no_grad():
                fake = self.mlp(gen, z, relu)
            loss, _ = self.loss(critic, real, fake, eps)
            grads = torch.autograd.grad(loss.sum(), critic)
            self._adam(critic, grads, state[1], lr, i * cfg.n_critic + j + 1, b1, b2, clip=False)  # the critic's count
        g_loss = -self.mlp(critic, self.mlp(gen, batch[-1], relu), lambda h: F.leaky_relu(h, 0.2)).mean(dim=(1, 2))
        grads = torch.autograd.grad(g_loss.sum(), gen)
        self._adam(gen, grads, state[0], lr, i + 1, b1, b2, clip=False)
        out.setdefault("critic", []).append(loss.detach())
        out.setdefault("gen", []).append(g_loss.detach())

    def _draw(self, g) -> list:
        """One step's minibatch draws for every seed, from the torch.Generator g (uniform rows: the weights are 1)."""
        torch, cfg, S, b = self.torch, self.cfg, self.seeds, BATCH
        rows = lambda: self.x[torch.randint(0, self.x.shape[0], (S, b), generator=g)]  # noqa: E731
        if self.fam.name == "flow":
            return [rows()]
        if self.fam.name == "gan":
            parts = []
            for _ in range(cfg.n_critic):
                parts += [rows(), torch.randn(S, b, cfg.latent, generator=g), torch.rand(S, b, 1, generator=g)]
            return [*parts, torch.randn(S, b, cfg.latent, generator=g)]
        if self.fam.name == "flow_matching":
            x1 = rows()
            return [torch.randn(x1.shape, generator=g), x1, torch.rand(S, b, generator=g)]
        y = rows()  # edm: ln sigma ~ N(p_mean, p_std^2)
        return [
            y,
            torch.exp(cfg.p_mean + cfg.p_std * torch.randn(S, b, generator=g)),
            torch.randn(y.shape, generator=g),
        ]


# ----------------------------------------------------------------------------------------- measuring


def replay_check(ours: dict[str, np.ndarray], ref: dict[str, np.ndarray], tol: float = REPLAY_TOL) -> dict:
    """The replayed loss curves [S, K] on both sides: the worst relative difference over steps, seeds and curves."""
    worst, where = 0.0, None
    for name, a in ours.items():
        b = ref[name]
        rel = np.abs(a - b) / np.maximum(np.abs(a), 1.0)
        if not np.all(np.isfinite(rel)):
            worst, where = float("inf"), name
            break
        if rel.max() > worst:
            worst, where = float(rel.max()), f"{name}, step {int(np.unravel_index(rel.argmax(), rel.shape)[1])}"
    steps = next(iter(ours.values())).shape[1]
    return {"steps": steps, "max_rel_diff": worst, "at": where, "tol": tol, "agree": bool(worst < tol)}


def tail_loss(losses: dict[str, np.ndarray]) -> np.ndarray:
    """Each seed's mean loss over the last quarter of the steps [S] (the GAN: the critic's)."""
    a = losses["critic"] if "critic" in losses else next(iter(losses.values()))
    return a[:, -max(1, a.shape[1] // 4) :].mean(1)


def replay(
    name: str, seeds: int, steps: int, replay_steps: int, tiny: bool = False, lr_factor: float = 1.0, ours=None
) -> dict:
    """The replay check on the first ``replay_steps`` of a fit of ``steps`` steps: madloop's ``train`` (its loss
    curves ``ours``, or a call of the case's program) against the PyTorch step fed madloop's draws, from the same
    initial weights. ``lr_factor``: a reference with another learning rate, which must fail it."""
    s = setup(name, seeds, tiny)
    if ours is None:
        ours = s.fam.losses(program(name, seeds, tiny, steps)(s.keys, s.params)[1])
    ref = TorchFamily(s.fam, s.params, s.x_np, lr_factor=lr_factor)
    theirs = ref.run(steps, replay_draws(s, replay_steps), stop=replay_steps)
    return replay_check({k: v[:, :replay_steps] for k, v in ours.items()}, theirs)


def pick_threads(ref: TorchFamily, steps: int) -> int:
    """Sets PyTorch's intra-op threads to the faster of 1 and its default for this reference (a few warm-up steps
    each, which also warm the allocator) and returns the choice. Under load OpenMP's barriers make the default many
    times slower on small matrices (a [2, 128, 10] x [2, 10, 16] bmm: 14 ms with 2 threads, 0.01 ms with 1)."""
    import torch

    best, choice = math.inf, DEFAULT_THREADS
    for threads in sorted({1, DEFAULT_THREADS}):
        torch.set_num_threads(threads)
        ref.run(min(3, steps), ref.generator(99))
        t0 = time.perf_counter()
        ref.run(min(3, steps), ref.generator(98))
        if (dt := time.perf_counter() - t0) < best:
            best, choice = dt, threads
    torch.set_num_threads(choice)
    return choice


def timed_calls(fn: Callable, repeats: int) -> tuple[list[float], object]:
    """Wall seconds of ``repeats`` calls of fn() (its result blocked on) and the last call's result."""
    import jax

    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times, out


def measure_family(
    name: str,
    seeds: int,
    steps: int,
    replay_steps: int,
    repeats: int = 2,
    ref_repeats: int = 2,
    compiled: bool = False,
    tiny: bool = False,
) -> dict:
    """One row: madloop and the PyTorch reference(s) on ``steps`` steps of ``seeds`` seeds, and both checks."""
    import torch

    from benchmarks import agreement

    s = setup(name, seeds, tiny)
    run = program(name, seeds, tiny, steps)
    (first,), _ = timed_calls(lambda: run(s.keys, s.params), 1)
    times, out = timed_calls(lambda: run(s.keys, s.params), repeats)
    ours = s.fam.losses(out[1])
    row = {
        "case": describe(s.fam, steps),
        "family": name,
        "seeds": seeds,
        "steps": steps,
        "madloop_first": first,
        "madloop_steady": statistics.median(times),
        "madloop_steady_all": times,
        "replay": replay(name, seeds, steps, replay_steps, tiny, ours=ours),
    }
    previous = torch.get_num_threads()
    device = "cuda" if torch.cuda.is_available() else "cpu"  # the reference uses the GPU madloop uses
    ref = TorchFamily(s.fam, s.params, s.x_np, device=device)
    row.update(torch_device=device, torch_threads=pick_threads(ref, steps) if device == "cpu" else None)
    seed = iter(range(10_000))
    times, theirs = timed_calls(lambda: ref.run(steps, ref.generator(next(seed))), ref_repeats)
    row.update(torch=statistics.median(times), torch_all=times)
    row["agree_torch"] = agreement.compare(tail_loss(ours), tail_loss(theirs))
    row["tail_loss"] = {"madloop": float(tail_loss(ours).mean()), "torch": float(tail_loss(theirs).mean())}
    row["torch_compile_error"] = None
    if compiled:
        comp = TorchFamily(s.fam, s.params, s.x_np, compiled=True, device=device)
        try:
            if comp.compile_error:
                raise RuntimeError(comp.compile_error)
            (c_first,), _ = timed_calls(lambda: comp.run(steps, comp.generator(next(seed))), 1)
            times, theirs = timed_calls(lambda: comp.run(steps, comp.generator(next(seed))), repeats)
            row.update(torch_compiled_first=c_first, torch_compiled=statistics.median(times), torch_compiled_all=times)
            row["agree_torch_compiled"] = agreement.compare(tail_loss(ours), tail_loss(theirs))
        except Exception as e:  # noqa: BLE001  (a compile failure is a result: the table says so)
            row["torch_compile_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
    torch.set_num_threads(previous)
    return row


def measure(families, seeds_list, steps: int, replay_steps: int, **kw) -> list[dict]:
    """A row per (family, seeds)."""
    return [measure_family(f, s, steps, replay_steps, **kw) for f in families for s in seeds_list]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    p.add_argument("--seeds", type=int, nargs="+", default=[8, 64])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--replay-steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2, help="madloop's steady calls after the first (median)")
    p.add_argument("--ref-repeats", type=int, default=2, help="the eager PyTorch reference's timed calls (median)")
    p.add_argument("--compiled", action="store_true", help="also time the reference through torch.compile")
    p.add_argument("--tiny", action="store_true", help="tiny networks (checks the module itself)")
    return p


def main() -> None:
    a = parser().parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: benchmarks.*, madloop
    import jax
    import torch

    import madloop  # noqa: F401  (before any JAX work: it sets XLA's CPU defaults, see madloop/_xla.py)

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__} "
        f"({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    for r in measure(
        a.families, a.seeds, a.steps, a.replay_steps, repeats=a.repeats, ref_repeats=a.ref_repeats,
        compiled=a.compiled, tiny=a.tiny,
    ):  # fmt: skip
        ml, ref = r["madloop_steady"], r["torch"]
        rep, agree = r["replay"], r["agree_torch"]
        print(
            f"{r['family']:14s} {r['seeds']:3d} seeds x {r['steps']} steps: madloop {r['madloop_first']:.2f} s first, "
            f"{ml:.3f} s steady; PyTorch batched eager {ref:.3f} s: ratio {ref / r['madloop_first']:.2f}x (compile "
            f"incl.) / {ref / ml:.2f}x (steady); replay {rep['steps']} steps max rel. diff {rep['max_rel_diff']:.1e} "
            f"({'ok' if rep['agree'] else 'FAIL'}); tail loss z = {agree['z']:.1f}"
        )
        if "torch_compiled" in r:
            c = r["torch_compiled"]
            print(f"{'':14s} torch.compile: {r['torch_compiled_first']:.2f} s first, {c:.3f} s steady; {c / ml:.2f}x")
        elif r["torch_compile_error"]:
            print(f"{'':14s} torch.compile failed: {r['torch_compile_error']}")


if __name__ == "__main__":
    main()
