"""Benchmark: the self-consuming diffusion loop in madloop vs a plain PyTorch eager reference of the same loop.

Usage: pip install -e ".[bench]"  (PyTorch, for the reference), then
       python benchmarks/diffusion_loop.py [--seeds 4] [--generations 3] [--width 64] [--depth 3] [--repeats 2]

Both sides run the same loop: ring of 8, fully synthetic, n samples per generation; an MLP denoiser
[x, sinusoidal(t)] -> depth x (Linear(width), SiLU) -> Linear(2); eps-prediction on the cosine VP schedule;
AdamW with gradient clipping at norm 1, cosine step-size decay within each fit and an EMA with warm-up;
train_steps at generation 0, then finetune_steps per generation from the previous weights; DDPM ancestral sampling
of n synthetic samples and n evaluation samples with sample_steps steps; the sliced Wasserstein-2 distance to a
held-out set each generation.

Three PyTorch references: ``torch_loop`` loops over seeds and generations in Python, as a paper's script does
(published-script style); ``torch_batched_loop`` is what a competent PyTorch user would write for many seeds: every
seed's weights stacked on a leading axis, batched matmuls (``torch.baddbmm``), per-seed gradient clipping, and
AdamW and the EMA as elementwise updates of the stacked tensors (the same per-seed arithmetic as
``torch.optim.AdamW``); ``compiled=True`` runs its loss, update and denoiser through ``torch.compile``. madloop runs
every seed in one compiled program (vmap). Timings: madloop's and the compiled reference's first calls include
compilation and are reported separately from the median of --repeats further calls.
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
    """One seed of the loop in PyTorch eager (on ``a.torch_device``); returns the sw2 per generation."""
    import torch

    with torch.device(a.torch_device):
        return _torch_loop(a, seed)


def _torch_loop(a: argparse.Namespace, seed: int) -> list[float]:
    import torch
    from torch import nn

    g = torch.Generator(device=a.torch_device).manual_seed(seed)
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


class BatchedTorch:
    """The loop for every seed at once in PyTorch: stacked weights [S, ...], batched matmuls, per-seed clipping.

    Built once per configuration so that ``torch.compile``'s compiled functions are reused across calls (the
    first call pays compilation, as madloop's first call does). ``compile_error`` holds why ``torch.compile``
    failed, if it did (the loop then runs eagerly and the benchmark reports the failure).
    """

    def __init__(self, a: argparse.Namespace, compiled: bool = False):
        import torch

        self.a, self.torch, self.compile_error = a, torch, None
        half = a.time_features // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float32) / half).to(a.torch_device)

        def embed(t):  # t [S, B] -> [S, B, time_features]
            ang = 1000.0 * t[..., None] * freqs
            return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)

        def alpha_bar(t):
            s = 0.008
            f = torch.cos(0.5 * math.pi * (t + s) / (1 + s)) ** 2 / math.cos(0.5 * math.pi * s / (1 + s)) ** 2
            return f.clamp(1e-4, 1.0)

        def forward(params, h):  # params [(W [S, in, out], b [S, 1, out])...], h [S, B, in] -> [S, B, 2]
            for i in range(0, len(params), 2):
                h = torch.baddbmm(params[i + 1], h, params[i])
                if i + 2 < len(params):
                    h = torch.nn.functional.silu(h)
            return h

        def loss_fn(params, x0, t, eps):  # the sum over seeds of each seed's mean loss: per-seed gradients
            ab = alpha_bar(t)[..., None]
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
            return ((forward(params, torch.cat([xt, embed(t)], -1)) - eps) ** 2).mean(dim=(1, 2)).sum()

        def update(params, grads, m, v, ema, lr, bc1, bc2, decay):
            # per-seed clip_grad_norm_(max_norm=1), then torch.optim.AdamW (betas 0.9, 0.999, eps 1e-8, no decay)
            sq = sum((g * g).sum(dim=tuple(range(1, g.dim()))) for g in grads)  # [S]
            coef = (1.0 / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            with torch.no_grad():
                for p, g, mi, vi, e in zip(params, grads, m, v, ema, strict=True):
                    g = g * coef.view(-1, *([1] * (g.dim() - 1)))
                    mi.mul_(0.9).add_(g, alpha=0.1)
                    vi.mul_(0.999).addcmul_(g, g, value=0.001)
                    p.sub_(lr / bc1 * mi / ((vi / bc2).sqrt() + 1e-8))
                    e.lerp_(p, 1 - decay)

        def denoise(params, x, t):  # x [S, n, 2], t a 0-d tensor
            return forward(params, torch.cat([x, embed(t.expand(x.shape[:2]))], -1))

        self.alpha_bar, self.loss_fn, self.update, self.denoise = alpha_bar, loss_fn, update, denoise
        if compiled:
            try:
                self.loss_fn, self.update, self.denoise = (torch.compile(f) for f in (loss_fn, update, denoise))
            except Exception as e:  # noqa: BLE001  (reported in the table, not hidden)
                self.compile_error = f"{type(e).__name__}: {e}"

    def __call__(self, seeds: int, seed: int = 0) -> np.ndarray:
        """Runs the loop for ``seeds`` seeds on ``a.torch_device``; returns the sw2 [seeds, G + 1]."""
        with self.torch.device(self.a.torch_device):
            return self._run(seeds, seed)

    def _run(self, seeds: int, seed: int) -> np.ndarray:
        torch, a = self.torch, self.a
        g = torch.Generator(device=a.torch_device).manual_seed(seed)
        S = seeds
        params, width_in = [], 2 + a.time_features
        for width_out in [a.width] * a.depth + [2]:  # nn.Linear's default init: U(-1/sqrt(in), 1/sqrt(in))
            bound = 1.0 / math.sqrt(width_in)
            params.append((torch.rand(S, width_in, width_out, generator=g) * 2 - 1) * bound)
            params.append((torch.rand(S, 1, width_out, generator=g) * 2 - 1) * bound)
            width_in = width_out
        params = [p.requires_grad_() for p in params]
        ema = [p.detach().clone() for p in params]
        m = [torch.zeros_like(p) for p in params]
        v = [torch.zeros_like(p) for p in params]
        adam_step = 0  # AdamW's step count runs on across generations, as in torch_loop's single optimiser

        def ring(n: int) -> torch.Tensor:
            k = torch.randint(0, 8, (S, n), generator=g)
            ang = 2 * math.pi * k / 8
            return 2.0 * torch.stack([torch.cos(ang), torch.sin(ang)], -1) + 0.05 * torch.randn(S, n, 2, generator=g)

        def train(x: torch.Tensor, steps: int) -> None:
            nonlocal adam_step
            rows = torch.arange(S)[:, None]
            for i in range(steps):
                x0 = x[rows, torch.randint(0, x.shape[1], (S, a.batch), generator=g)]
                t = 1e-3 + (1 - 1e-3) * torch.rand(S, a.batch, generator=g)
                eps = torch.randn(x0.shape, generator=g)
                for p in params:
                    p.grad = None
                self.loss_fn(params, x0, t, eps).backward()
                adam_step += 1
                scalars = (
                    a.lr * 0.5 * (1 + math.cos(math.pi * i / steps)),
                    1 - 0.9**adam_step,
                    1 - 0.999**adam_step,
                    min(a.ema, (1.0 + i) / (10.0 + i)),
                )
                self.update(params, [p.grad for p in params], m, v, ema, *(torch.tensor(c) for c in scalars))

        @torch.no_grad()
        def sample(n: int) -> torch.Tensor:
            x = torch.randn(S, n, 2, generator=g)
            for i in range(a.sample_steps):
                t, s = 1 - i / a.sample_steps, 1 - (i + 1) / a.sample_steps
                ab_t = self.alpha_bar(torch.tensor(t))
                ab_s = torch.tensor(1.0) if i + 1 == a.sample_steps else self.alpha_bar(torch.tensor(s))
                eps = self.denoise(ema, x, torch.tensor(t))
                x0 = (x - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
                alpha = ab_t / ab_s
                beta = 1 - alpha
                mean = (ab_s.sqrt() * beta * x0 + alpha.sqrt() * (1 - ab_s) * x) / (1 - ab_t)
                x = mean + (beta * (1 - ab_s) / (1 - ab_t)).sqrt() * torch.randn(x.shape, generator=g)
            return x

        heldout = ring(a.n)
        dirs = torch.randn(S, a.projections, 2, generator=g)
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        ref = torch.sort(heldout @ dirs.transpose(1, 2), dim=1).values

        def sw2(x: torch.Tensor) -> np.ndarray:
            proj = torch.sort(x @ dirs.transpose(1, 2), dim=1).values
            return ((proj - ref) ** 2).mean(dim=(1, 2)).sqrt().cpu().numpy()

        data = ring(a.n)
        out = []
        for gen in range(a.generations + 1):
            train(data, a.train_steps if gen == 0 else a.finetune_steps)
            out.append(sw2(sample(a.n)))
            data = sample(a.n)
        return np.stack(out, axis=1)


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
    p.add_argument("--torch-device", default="cpu", help="where the PyTorch references run: cpu or cuda")
    return p


def measure(a: argparse.Namespace, eager_repeats: int | None = None) -> dict:
    """Times madloop and the three PyTorch references on the same loop.

    madloop and the compiled reference: the first call (compilation included) and the median of ``a.repeats``
    further calls; the eager references (nothing to compile): the median of ``eager_repeats`` calls (default
    ``a.repeats``). Every side runs ``a.seeds`` seeds; sw2 [seeds, G + 1] per side for the agreement columns.
    """
    import madloop
    from madloop.engine import Simulation

    eager_repeats = a.repeats if eager_repeats is None else eager_repeats
    sim = Simulation(madloop.compose(madloop_overrides(a)))
    t0 = time.perf_counter()
    sim()
    first_s = time.perf_counter() - t0
    ml_times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        result = sim()
        ml_times.append(time.perf_counter() - t0)
    out = {
        "madloop_first": first_s,
        "madloop_steady": statistics.median(ml_times),
        "madloop_steady_all": ml_times,
        "sw2_madloop": np.asarray(result.metrics["sw2"]).tolist(),
    }
    torch_times, torch_sw2 = [], []
    for _ in range(eager_repeats):
        t0 = time.perf_counter()
        torch_sw2 = [torch_loop(a, seed) for seed in range(a.seeds)]
        torch_times.append(time.perf_counter() - t0)
    out.update(torch=statistics.median(torch_times), torch_all=torch_times, sw2_torch=torch_sw2)
    batched = BatchedTorch(a, compiled=False)
    times = []
    for r in range(eager_repeats):
        t0 = time.perf_counter()
        sw2 = batched(a.seeds, seed=1000 + r)
        times.append(time.perf_counter() - t0)
    out.update(torch_batched=statistics.median(times), torch_batched_all=times, sw2_torch_batched=sw2.tolist())
    compiled = BatchedTorch(a, compiled=True)
    try:
        if compiled.compile_error:
            raise RuntimeError(compiled.compile_error)
        t0 = time.perf_counter()
        compiled(a.seeds, seed=2000)
        first = time.perf_counter() - t0
        times = []
        for r in range(a.repeats):
            t0 = time.perf_counter()
            sw2 = compiled(a.seeds, seed=2001 + r)
            times.append(time.perf_counter() - t0)
        out.update(
            torch_compiled_first=first,
            torch_compiled=statistics.median(times),
            torch_compiled_all=times,
            sw2_torch_compiled=sw2.tolist(),
        )
    except Exception as e:  # noqa: BLE001  (a compile failure is a result: the table says so)
        compiled.compile_error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
    out["torch_compile_error"] = compiled.compile_error
    return out


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
    for side in ("madloop", "torch", "torch_batched", "torch_compiled"):
        if f"sw2_{side}" in r:
            print(f"sw2 per generation, mean over seeds, {side}: {np.round(np.mean(r[f'sw2_{side}'], 0), 3).tolist()}")
    first_s, ml = r["madloop_first"], r["madloop_steady"]
    print(f"madloop: first call (compile included) {first_s:.2f} s, steady (median of {a.repeats}) {ml:.2f} s")
    for side in ("torch", "torch_batched", "torch_compiled"):
        if side in r:
            ref = r[side]
            print(f"{side}: {ref:.2f} s; ratio {side} / madloop: {ref / first_s:.2f}x (compile incl.), {ref / ml:.2f}x")
    if r["torch_compile_error"]:
        print(f"torch.compile failed: {r['torch_compile_error']}")


if __name__ == "__main__":
    main()
