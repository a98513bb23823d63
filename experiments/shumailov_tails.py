"""Shumailov et al. 2024 (Nature): in a language model refitted on its own text the tails of the distribution
vanish first; keeping 10% of the original data slows it.

Usage: python experiments/shumailov_tails.py [--seeds 32] [--generations 50] [--out docs/shumailov_tails.png]

Runs ``experiment=shumailov_tails`` (a bigram model, MLE counts, fully synthetic) and
``experiment=shumailov_tails_real`` (the same with 20 of every generation's 200 rows taken from the original data)
on a Markov language of 32 tokens whose every context ranks its next tokens by Zipf(1). A transition the model
gives probability 0 is lost for good (MLE never recovers it from its own text), so the survival of the truth's
transitions, grouped by their rank within their context (1 = most probable), shows which vanish first. Exact chain
metrics (docs/metrics.md): ngram_support, tail_lost, kl_reverse, entropy.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import madloop  # noqa: E402
from madloop import tokens as T  # noqa: E402
from madloop.data import make_source  # noqa: E402

RANK_GROUPS = ((1, 4), (5, 8), (9, 16), (17, 24), (25, 32))  # ranks of a transition within its context


def survival(trans: np.ndarray, truth: np.ndarray, vocab: int) -> np.ndarray:
    """[groups, G + 1]: the share of the truth's transitions (real contexts) of each rank group the model keeps,
    pooled over runs. trans [runs, G + 1, (V + 1), V]; truth [(V + 1), V]."""
    p = truth[:vocab]
    rank = np.argsort(np.argsort(-p, axis=1, kind="stable"), axis=1) + 1  # 1 = the context's most probable
    kept = trans[:, :, :vocab] > 0  # [runs, G + 1, V, V]
    out = []
    for lo, hi in RANK_GROUPS:
        group = (rank >= lo) & (rank <= hi) & (p > 0)
        out.append(kept[:, :, group].mean(axis=(0, 2)))
    return np.asarray(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--generations", type=int, default=50)
    ap.add_argument("--out", default="shumailov_tails.png")
    a = ap.parse_args()
    runs = {"fully synthetic": "shumailov_tails", "10% real data": "shumailov_tails_real"}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    g = np.arange(a.generations + 1)
    for style, (label, preset) in zip(("-", "--"), runs.items(), strict=True):
        overrides = [f"experiment={preset}", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
        t0 = time.perf_counter()
        path = madloop.parameter_path(overrides)
        seconds = time.perf_counter() - t0
        cfg = madloop.compose(overrides)
        truth = np.asarray(make_source(cfg.data).tokens.trans)
        surv = survival(np.asarray(path.params.trans), truth, cfg.data.vocab)
        print(f"{label}: {a.seeds} seeds x {a.generations} generations, {seconds:.1f} s (compilation included)")
        print("  transitions kept by rank group " + ", ".join(f"{lo}-{hi}" for lo, hi in RANK_GROUPS))
        for gen in (0, 10, 25, a.generations):
            print(f"  g = {gen:3d}: " + "  ".join(f"{s:.3f}" for s in surv[:, gen]))
        for name in ("ngram_support", "tail_lost", "kl_reverse", "entropy"):
            x = path.metrics[name]  # [runs, G + 1]
            se = x.std(axis=0, ddof=1) / np.sqrt(x.shape[0])
            print(f"  {name:14s} " + "  ".join(f"g{gen}: {x[:, gen].mean():.4f} ± {se[gen]:.4f}" for gen in
                                                (0, 10, 25, a.generations)))  # fmt: skip
        for i, (lo, hi) in enumerate(RANK_GROUPS):
            axes[0].plot(g, surv[i], style, color=f"C{i}", label=f"ranks {lo}-{hi}" if style == "-" else None)
        for ax, name in zip(axes[1:], ("entropy", "kl_reverse"), strict=True):
            ax.plot(g, path.metrics[name].mean(axis=0), style, color="k", label=label)
    v, length = cfg.data.vocab, cfg.data.length
    truth_entropy = float(T.sequence_entropy(make_source(cfg.data).tokens.trans, v, cfg.data.order, length))
    axes[1].axhline(truth_entropy, color="gray", lw=0.6)
    print(f"truth entropy {truth_entropy:.4f} nats per token")
    axes[0].set_title("truth transitions kept (solid: fully synthetic, dashed: 10% real)", fontsize=9)
    axes[0].set_ylabel("share kept")
    axes[1].set_title("entropy per token (nats; gray: the truth's)", fontsize=9)
    axes[2].set_title("kl_reverse: KL(model || truth) per token", fontsize=9)
    for ax in axes:
        ax.set_xlabel("generation")
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(f"Bigram model on a 32-token Markov language, MLE, 200 rows x 64 tokens, {a.seeds} seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"figure: {a.out}")


if __name__ == "__main__":
    main()
