"""Benchmark: the self-consuming diffusion loop in madloop vs a plain PyTorch eager reference of the same loop.

Usage: pip install -e ".[bench]"  (PyTorch, for the reference), then
       python benchmarks/diffusion_loop.py [--seeds 4] [--generations 3] [--width 64] [--depth 3] [--repeats 2]

Both sides run the same loop: ring of 8, fully synthetic, n samples per generation; an MLP denoiser
[x, sinusoidal(t)] -> depth x (Linear(width), SiLU) -> Linear(2); eps-prediction on the cosine VP schedule;
AdamW with gradient clipping at norm 1, cosine step-size decay within each fit and an EMA with warm-up;
train_steps at generation 0, then finetune_steps per generation from the previous weights; DDPM ancestral sampling
of n synthetic samples and n evaluation samples with sample_steps steps; the sliced Wasserstein-2 distance to a
held-out set each generation. The reference loops over seeds and generations in Python, as a paper's script does;
madloop runs every seed in one compiled program (vmap). Timings: median of --repeats runs; madloop's first call
includes compilation and is reported separately.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np


def torch_loop(a: argparse.Namespace, seed: int) -> list[float]:
    """One seed of the loop in PyTorch eager; returns the sw2 per generation."""
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    half = a.time_features // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half)

    def embed(t: torch.Tensor) -> torch.Tensor:
        ang = 1000.0 * t[:, None] * freqs[None]
        return torch.cat([torch.sin(ang), torch.cos(ang)], dim=1)

    def alpha_bar(t: torch.Tensor) -> torch.Tensor:
        s = 0.008
        f = torch.cos(0.5 * math.pi * (t + s) / (1 + s)) ** 2 / math.cos(0.5 * math.pi * s / (1 + s)) ** 2
        return f.clamp(1e-4, 1.0)

    layers: list[nn.Module] = []
    width_in = 2 + a.time_features
    for _ in range(a.depth):
        layers += [nn.Linear(width_in, a.width), nn.SiLU()]
        width_in = a.width
    net = nn.Sequential(*layers, nn.Linear(width_in, 2))
    ema = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=0.0)

    def ring(n: int) -> torch.Tensor:
        k = torch.randint(0, 8, (n,), generator=g)
        ang = 2 * math.pi * k / 8
        return 2.0 * torch.stack([torch.cos(ang), torch.sin(ang)], 1) + 0.05 * torch.randn(n, 2, generator=g)

    def train(x: torch.Tensor, steps: int) -> None:
        for i in range(steps):
            x0 = x[torch.randint(0, x.shape[0], (a.batch,), generator=g)]
            t = 1e-3 + (1 - 1e-3) * torch.rand(a.batch, generator=g)
            eps = torch.randn(x0.shape, generator=g)
            ab = alpha_bar(t)[:, None]
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
            loss = ((net(torch.cat([xt, embed(t)], 1)) - eps) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            for group in opt.param_groups:
                group["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * i / steps))
            opt.step()
            decay = min(a.ema, (1.0 + i) / (10.0 + i))
            with torch.no_grad():
                torch._foreach_lerp_(ema, list(net.parameters()), 1 - decay)

    @torch.no_grad()
    def sample(n: int) -> torch.Tensor:
        weights = [p.detach().clone() for p in net.parameters()]
        for p, e in zip(net.parameters(), ema, strict=True):
            p.copy_(e)
        x = torch.randn(n, 2, generator=g)
        for i in range(a.sample_steps):
            t, s = 1 - i / a.sample_steps, 1 - (i + 1) / a.sample_steps
            ab_t = alpha_bar(torch.tensor([t]))
            ab_s = torch.tensor([1.0]) if i + 1 == a.sample_steps else alpha_bar(torch.tensor([s]))
            eps = net(torch.cat([x, embed(torch.full((n,), t))], 1))
            x0 = (x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
            alpha = ab_t / ab_s
            beta = 1 - alpha
            mean = (ab_s.sqrt() * beta * x0 + alpha.sqrt() * (1 - ab_s) * x) / (1 - ab_t)
            x = mean + (beta * (1 - ab_s) / (1 - ab_t)).sqrt() * torch.randn(x.shape, generator=g)
        for p, w in zip(net.parameters(), weights, strict=True):
            p.copy_(w)
        return x

    heldout = ring(a.n)
    dirs = torch.randn(a.projections, 2, generator=g)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    ref = torch.sort(heldout @ dirs.T, dim=0).values

    def sw2(x: torch.Tensor) -> float:
        return float(((torch.sort(x @ dirs.T, dim=0).values - ref) ** 2).mean().sqrt())

    data = ring(a.n)
    out = []
    for gen in range(a.generations + 1):
        train(data, a.train_steps if gen == 0 else a.finetune_steps)
        out.append(sw2(sample(a.n)))
        data = sample(a.n)  # the next generation's (fully synthetic) training set
    return out


def madloop_overrides(a: argparse.Namespace) -> list[str]:
    return [
        "data=ring8",
        "model=diffusion",
        "regime=fully_synthetic",
        f"regime.n_real={a.n}",
        f"regime.n_synth={a.n}",
        f"loop.generations={a.generations}",
        f"loop.seeds={a.seeds}",
        f"loop.chunk={a.generations}",  # the whole loop as one program
        f"model.width={a.width}",
        f"model.depth={a.depth}",
        f"model.time_features={a.time_features}",
        f"model.batch={a.batch}",
        f"model.train_steps={a.train_steps}",
        f"model.finetune_steps={a.finetune_steps}",
        f"model.sample_steps={a.sample_steps}",
        f"model.lr={a.lr}",
        f"model.ema={a.ema}",
        "model.sampler=ddpm",
        f"eval.n={a.n}",
        f"eval.projections={a.projections}",
        "eval.metrics=[sw2]",
        "eval.snapshots=0",
        "eval.snapshot_n=1",
        "plots=false",
    ]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--generations", type=int, default=3)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--time-features", type=int, default=32)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--train-steps", type=int, default=2000)
    p.add_argument("--finetune-steps", type=int, default=500)
    p.add_argument("--sample-steps", type=int, default=50)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--projections", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    return p


def measure(a: argparse.Namespace) -> dict:
    """Times both loops; returns seconds (madloop first call, madloop and torch medians) and sw2 per generation."""
    import madloop
    from madloop.loop import Simulation

    sim = Simulation(madloop.compose(madloop_overrides(a)))
    t0 = time.perf_counter()
    sim()
    first_s = time.perf_counter() - t0
    ml_times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        result = sim()
        ml_times.append(time.perf_counter() - t0)
    torch_times, torch_sw2 = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        torch_sw2 = [torch_loop(a, seed) for seed in range(a.seeds)]
        torch_times.append(time.perf_counter() - t0)
    return {
        "madloop_first": first_s,
        "madloop_steady": statistics.median(ml_times),
        "torch": statistics.median(torch_times),
        "sw2_madloop": np.asarray(result.metrics["sw2"]).mean(0).tolist(),
        "sw2_torch": np.asarray(torch_sw2).mean(0).tolist(),
    }


def main() -> None:
    a = parser().parse_args()
    import jax
    import torch

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__} "
        f"({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print(
        f"loop: {a.seeds} seeds x {a.generations + 1} generations, n = {a.n}, MLP {a.depth}x{a.width}, batch "
        f"{a.batch}, {a.train_steps} + {a.generations} x {a.finetune_steps} steps, DDPM {a.sample_steps} steps"
    )
    r = measure(a)
    print(
        f"sw2 per generation (mean over seeds): madloop {np.round(r['sw2_madloop'], 3).tolist()}, "
        f"torch {np.round(r['sw2_torch'], 3).tolist()}"
    )
    ref, first_s, ml = r["torch"], r["madloop_first"], r["madloop_steady"]
    print(f"madloop first call (compile included): {first_s:8.2f} s   ratio torch / madloop: {ref / first_s:6.2f}x")
    print(f"madloop steady state (median):        {ml:8.2f} s   ratio torch / madloop: {ref / ml:6.2f}x")
    print(f"torch eager (median of {a.repeats}):            {ref:8.2f} s")


if __name__ == "__main__":
    main()
