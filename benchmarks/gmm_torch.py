"""Benchmark: madloop's GMM fully synthetic loop against a PyTorch EM batched over chains (eager and torch.compile).

The loop: ring of 8 Gaussians, K = 8 full-covariance components, n = 128 samples per generation, generation 0
fitted on real data (random-point initialisation, ``init_iters`` EM iterations), then ``iters`` warm-started EM
iterations per generation on the previous generation's samples (fully synthetic, replace), ``generations``
generations, the held-out negative log-likelihood of 1000 real points after each. madloop runs it with
``model.init=random`` and ``eval.metrics=[nll]``, one compiled program.

The reference is what a competent PyTorch user writes for many chains: every array carries a leading chain axis
[S, ...]; per generation one batched component draw (``torch.multinomial``), one batched normal draw through the
components' Cholesky factors, and ``iters`` EM steps, each one batched Cholesky of the [S, K, d, d] covariances,
a log-sum-exp E-step and a weighted M-step with ``reg_covar`` on the diagonal, as madloop's. ``torch.compile``
compiles the generation step (the Python loop over generations stays, as in the fastest public loop code). Both
in float32 on this machine's CPU threads.

Agreement: sign(NLL) log(1 + |NLL|) over seeds at generation 0 and the last (``benchmarks.agreement``). FLOPs: the
EM step's count per chain and iteration (E: K n (d^2 + 3 d + 4); M: K n (2 d^2 + 2 d)), so the table shows how far
each side is from the machine's float32 matmul peak.

Usage: python benchmarks/gmm_torch.py [--seeds 16 256] [--generations 200] [--repeats 3] [--no-compile]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/gmm_torch.py` from the root
from benchmarks import agreement, references  # noqa: E402

K, D, N, RADIUS, STD = 8, 2, 128, 2.0, 0.05


def log_prob(x, means, chol, logw):
    """[S, m, K] log w_k N(x | mean_k, L_k L_k^T) for x [S, m, d], means [S, K, d], chol [S, K, d, d], logw [S, K]."""
    import torch

    diff = x[:, None, :, :] - means[:, :, None, :]  # [S, K, m, d]
    z = torch.linalg.solve_triangular(chol, diff.transpose(-1, -2), upper=False)  # [S, K, d, m]
    maha = (z**2).sum(-2)  # [S, K, m]
    logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)  # [S, K]
    lp = -0.5 * (maha + logdet[..., None] + x.shape[-1] * math.log(2 * math.pi))
    return (lp + logw[..., None]).transpose(1, 2)


def em_step(x, means, covs, weights, reg_covar: float = 1e-6):
    """One EM iteration of every chain: x [S, n, d]; means [S, K, d], covs [S, K, d, d], weights [S, K]."""
    import torch

    chol = torch.linalg.cholesky(covs)
    resp = torch.softmax(log_prob(x, means, chol, torch.log(weights)), dim=-1)  # [S, n, K]
    nk = resp.sum(1) + 10 * torch.finfo(x.dtype).eps  # [S, K]
    means = torch.einsum("snk,snd->skd", resp, x) / nk[..., None]
    diff = x[:, None] - means[:, :, None]  # [S, K, n, d]
    covs = torch.einsum("skn,sknd,skne->skde", resp.transpose(1, 2), diff, diff) / nk[..., None, None]
    return means, covs + reg_covar * torch.eye(x.shape[-1], dtype=x.dtype), nk / nk.sum(-1, keepdim=True)


def torch_loop(seeds: int, generations: int, init_iters: int, iters: int, heldout: np.ndarray, compiled: bool):
    """Returns (run(seed) -> NLL [seeds, G + 1] as numpy, the compiled flag that took effect)."""
    import torch

    held = torch.as_tensor(heldout, dtype=torch.float32)
    eye = torch.eye(D)

    def nll(means, covs, weights):
        lp = log_prob(held.expand(means.shape[0], -1, -1), means, torch.linalg.cholesky(covs), torch.log(weights))
        return -torch.logsumexp(lp, dim=-1).mean(-1)

    def generation(means, covs, weights):
        comp = torch.multinomial(weights, N, replacement=True)  # [S, n]
        chol = torch.linalg.cholesky(covs)
        pick = lambda a: torch.gather(a, 1, comp.view(*comp.shape, *([1] * (a.dim() - 2))).expand(-1, -1, *a.shape[2:]))  # noqa: E731
        x = pick(means) + (pick(chol) @ torch.randn(means.shape[0], N, D, 1)).squeeze(-1)
        for _ in range(iters):
            means, covs, weights = em_step(x, means, covs, weights)
        return means, covs, weights, nll(means, covs, weights)

    step = generation
    if compiled:
        try:
            step = torch.compile(generation, dynamic=False)
        except Exception:  # noqa: BLE001 (a machine without a compiler toolchain)
            compiled = False

    def run(seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        x = torch.as_tensor(
            np.stack([references.ring8(rng, N, RADIUS, STD) for _ in range(seeds)]), dtype=torch.float32
        )
        idx = torch.stack([torch.randperm(N)[:K] for _ in range(seeds)])  # random points as initial means
        means = torch.gather(x, 1, idx[..., None].expand(-1, -1, D))
        covs = eye.expand(seeds, K, D, D).clone()
        weights = torch.full((seeds, K), 1.0 / K)
        for _ in range(init_iters):
            means, covs, weights = em_step(x, means, covs, weights)
        out = [nll(means, covs, weights)]
        for _ in range(generations):
            means, covs, weights, value = step(means, covs, weights)
            out.append(value)
        return torch.stack(out, 1).numpy()

    return run, compiled


def em_flops(seeds: int, generations: int, iters: int) -> float:
    """FLOPs of the loop's EM steps (the bulk of the work): per chain, iteration and component, E: n (d^2 + 3d + 4),
    M: n (2 d^2 + 2 d)."""
    per = K * N * (D * D + 3 * D + 4 + 2 * D * D + 2 * D)
    return float(seeds * generations * iters * per)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[16, 256])
    p.add_argument("--generations", type=int, default=200)
    p.add_argument("--init-iters", type=int, default=100)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-compile", action="store_true")
    a = p.parse_args()
    import torch

    from benchmarks.run import gmm_overrides, timed_madloop

    heldout = references.ring8(np.random.default_rng(12345), 1000)
    print(f"# {platform.machine()} {os.cpu_count()} cores; torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads); ring of 8, K = {K}, n = {N}, {a.init_iters} + {a.iters} EM, {a.generations} generations; "
          f"steady = median of {a.repeats}")  # fmt: skip
    print("| seeds | madloop compile incl. / steady (s) | torch eager (s) | ratio | torch.compile first / steady (s) "
          "| ratio | EM GFLOP/s madloop / eager | agreement (g = 0, G) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for seeds in a.seeds:
        overrides = gmm_overrides(seeds, a.generations, N, a.init_iters, a.iters) + ["model.init=random"]
        ml = timed_madloop(overrides, a.repeats)
        nll = ml["result"].metrics["nll"]
        cells = [str(seeds), f"{ml['first']:.2f} / {ml['steady']:.2f}"]
        eager, _ = torch_loop(seeds, a.generations, a.init_iters, a.iters, heldout, compiled=False)
        times = []
        for r in range(a.repeats):
            t0 = time.perf_counter()
            ref = eager(r)
            times.append(time.perf_counter() - t0)
        te = statistics.median(times)
        cells += [f"{te:.2f}", f"{te / ml['steady']:.1f}x"]
        if a.no_compile:
            cells += ["not run", ""]
        else:
            comp, ok = torch_loop(seeds, a.generations, a.init_iters, a.iters, heldout, compiled=True)
            t0 = time.perf_counter()
            comp(0)
            first = time.perf_counter() - t0
            ctimes = []
            for r in range(a.repeats):
                t0 = time.perf_counter()
                comp(r + 1)
                ctimes.append(time.perf_counter() - t0)
            tc = statistics.median(ctimes)
            cells += [
                f"{first:.2f} / {tc:.2f}" + ("" if ok else " (compile failed: eager)"),
                f"{tc / ml['steady']:.1f}x",
            ]
        flops = em_flops(seeds, a.generations, a.iters)
        cells.append(f"{flops / ml['steady'] / 1e9:.2f} / {flops / te / 1e9:.2f}")
        checks = [agreement.compare(agreement.symlog(nll[:, g]), agreement.symlog(ref[:, g])) for g in (0, -1)]
        cells.append(", ".join(f"z = {c['z']:.1f}" + ("" if c["agree"] else " DISAGREE") for c in checks))
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
