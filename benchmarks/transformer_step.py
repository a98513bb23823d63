"""Benchmark: N training steps of madloop's transformer LM, vmapped over seeds, against PyTorch batched over seeds.

Usage: pip install -e ".[bench]"  (PyTorch, for the reference), then
       python benchmarks/transformer_step.py [--seeds 4 16] [--steps 400] [--repeats 2] [--no-compile]

Sizes: the preset ``experiment=transformer_pools`` (Markov language, V = 8, rows of L = 16; width 32, depth 2,
4 heads, batch 32, lr 3e-3, 256 training rows per seed); ``--steps`` defaults to its from-scratch budget
(``model.train_steps`` = 400). madloop's side is the family's own ``fit`` (``madloop.models.transformer``: the
shared training scan of ``madloop.models.training``), jitted and vmapped over seeds as the engine runs it.

The reference (``BatchedTorchLM``) is what a careful PyTorch user writes for many seeds of the same training: every
seed's weights stacked on a leading axis, batched matmuls (``torch.baddbmm``) and
``scaled_dot_product_attention(is_causal=True)`` over (seeds x rows), the parameters as views of one flat
[seeds, P] buffer so that per-seed global-norm clipping, AdamW (optax's arithmetic: clip at 1, bias-corrected
moments, decoupled weight decay, the step scaled by the cosine decay 0.5 (1 + cos(pi i / N))) and the weight EMA
are a handful of elementwise ops on that buffer; minibatch rows drawn per seed by inverse CDF of the row weights,
as madloop's ``row_sampler``. Eager, and with its loss and update through ``torch.compile``.

Same computation (``agreement``): madloop's initial weights are copied into the reference and both train on
identical minibatches (madloop's own row draws); the step-0 loss and the training-set loss after k steps agree to
``LOSS_RTOL`` relative. A reference without the causal mask, or with another learning rate, fails it
(tests/test_benchmarks.py).

Timing: madloop and the compiled reference: the first call (compilation included) and the median of ``--repeats``
further calls; the eager reference: the median of ``--repeats`` calls.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import numpy as np

LOSS_RTOL = 2e-4  # float32, different op orders: measured differences 0 to 1.4e-7 relative (docs/benchmarks.md)
PRESET = "experiment=transformer_pools"


def preset_sizes(overrides: tuple[str, ...] = ()) -> tuple:
    """(TransformerModel, vocab, length, the preset's training rows per seed) of ``experiment=transformer_pools``."""
    import madloop

    cfg = madloop.compose([PRESET, *overrides])
    return cfg.model, cfg.data.vocab, cfg.data.length, cfg.regime.n_real


class BatchedTorchLM:
    """madloop's causal transformer LM and its training for S seeds at once in PyTorch (stacked weights).

    The network is ``madloop.models.lm_network.CausalLM``: the row shifted right behind BOS = V, token and learned
    position embeddings, ``depth`` pre-LayerNorm blocks (LayerNorm eps 1e-6, causal multi-head attention with
    biased q/k/v/out projections, a 4x MLP with tanh-GELU), a final LayerNorm and a biased readout to V logits.

    Args:
        vocab, length, width, depth, heads: as madloop's family.
        lr, weight_decay, ema: as ``TransformerModel``.
        compiled: the loss and the update through ``torch.compile`` (``compile_error`` says why not, if it failed).
        causal: False drops the causal mask (a deliberately wrong reference, for the agreement test).
        device: where the weights live and the steps run (``cuda`` on a GPU machine: madloop runs there too).
    """

    def __init__(
        self, vocab, length, width, depth, heads, lr, weight_decay=0.0, ema=0.0, compiled=False, causal=True,
        device="cpu",
    ):  # fmt: skip
        import torch
        import torch.nn.functional as F

        self.torch, self.compile_error, self.device = torch, None, torch.device(device)
        self.vocab, self.length, self.width, self.heads = vocab, length, width, heads
        self.lr, self.weight_decay, self.ema = lr, weight_decay, ema
        w = width
        spec = [("embed", (vocab + 1, w)), ("position", (length, w))]
        for b in range(depth):
            spec += [(f"{b}.ln1.scale", (1, w)), (f"{b}.ln1.bias", (1, w))]
            spec += [(f"{b}.qkv.kernel", (w, 3 * w)), (f"{b}.qkv.bias", (1, 3 * w))]
            spec += [(f"{b}.out.kernel", (w, w)), (f"{b}.out.bias", (1, w))]
            spec += [(f"{b}.ln2.scale", (1, w)), (f"{b}.ln2.bias", (1, w))]
            spec += [(f"{b}.mlp1.kernel", (w, 4 * w)), (f"{b}.mlp1.bias", (1, 4 * w))]
            spec += [(f"{b}.mlp2.kernel", (4 * w, w)), (f"{b}.mlp2.bias", (1, w))]
        spec += [
            ("ln.scale", (1, w)),
            ("ln.bias", (1, w)),
            ("readout.kernel", (w, vocab)),
            ("readout.bias", (1, vocab)),
        ]
        self.spec = spec
        self.size = sum(math.prod(s) for _, s in spec)

        def layer_norm(h, scale, bias):
            return F.layer_norm(h, (w,), eps=1e-6) * scale + bias

        def logits(p: dict, x):  # x [S, B, L] int64 -> [S, B * L, V]
            S, B, L = x.shape
            bos = torch.full((S, B, 1), vocab, dtype=x.dtype, device=x.device)
            inputs = torch.cat([bos, x[..., :-1]], -1)
            h = torch.gather(p["embed"], 1, inputs.reshape(S, -1, 1).expand(-1, -1, w))  # [S, B L, w]
            h = (h.view(S, B, L, w) + p["position"][:, None]).view(S, B * L, w)
            for b in range(depth):
                a = layer_norm(h, p[f"{b}.ln1.scale"], p[f"{b}.ln1.bias"])
                qkv = torch.baddbmm(p[f"{b}.qkv.bias"], a, p[f"{b}.qkv.kernel"])
                q, k, v = qkv.view(S * B, L, 3, heads, w // heads).permute(2, 0, 3, 1, 4).unbind(0)
                att = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # [S B, heads, L, w / heads]
                att = att.transpose(1, 2).reshape(S, B * L, w)
                h = h + torch.baddbmm(p[f"{b}.out.bias"], att, p[f"{b}.out.kernel"])
                m = layer_norm(h, p[f"{b}.ln2.scale"], p[f"{b}.ln2.bias"])
                m = F.gelu(torch.baddbmm(p[f"{b}.mlp1.bias"], m, p[f"{b}.mlp1.kernel"]), approximate="tanh")
                h = h + torch.baddbmm(p[f"{b}.mlp2.bias"], m, p[f"{b}.mlp2.kernel"])
            h = layer_norm(h, p["ln.scale"], p["ln.bias"])
            return torch.baddbmm(p["readout.bias"], h, p["readout.kernel"])

        def losses(p: dict, x):  # [S]: each seed's mean next-token cross-entropy over its rows and positions
            S = x.shape[0]
            z = logits(p, x)
            return F.cross_entropy(z.reshape(-1, vocab), x.reshape(-1), reduction="none").view(S, -1).mean(1)

        def loss_sum(p: dict, x):  # the sum over seeds: its gradient is every seed's own gradient
            per_seed = losses(p, x)
            return per_seed.sum(), per_seed.detach()

        def update(flat, grad, m, v, ema, lr, bc1, bc2, decay):
            # optax: clip_by_global_norm(1) per seed, scale_by_adam, add_decayed_weights, -lr (cosine-scaled); EMA
            norm = grad.square().sum(1, keepdim=True).sqrt()
            g = torch.where(norm < 1.0, grad, grad / norm)
            m.lerp_(g, 0.1)
            v.mul_(0.999).addcmul_(g, g, value=0.001)
            flat.sub_(lr * ((m / bc1) / ((v / bc2).sqrt() + 1e-8) + weight_decay * flat))
            ema.lerp_(flat, 1 - decay)

        self.losses, self.loss_sum, self.update = losses, loss_sum, update
        if compiled:
            try:
                self.loss_sum, self.update = torch.compile(loss_sum), torch.compile(update)
            except Exception as e:  # noqa: BLE001  (reported, not hidden)
                self.compile_error = f"{type(e).__name__}: {e}"

    def views(self, flat) -> dict:
        """{name: [S, *shape]} views of the flat buffer [S, P] (leaves: the grads land per view)."""
        out, at, S = {}, 0, flat.shape[0]
        for name, shape in self.spec:
            n = math.prod(shape)
            out[name] = flat[:, at : at + n].view(S, *shape)
            at += n
        return out

    def init(self, seeds: int, generator) -> object:
        """Flat [S, P] weights with Flax's initialisers (lecun-normal kernels, zero biases, unit LayerNorm scales,
        Embed N(0, 1 / width), positions N(0, 0.02^2))."""
        torch = self.torch
        flat = torch.zeros(seeds, self.size)
        for name, p in self.views(flat).items():
            if name.endswith(".scale"):
                p.fill_(1.0)
            elif name == "embed":
                p.normal_(0.0, self.width**-0.5, generator=generator)
            elif name == "position":
                p.normal_(0.0, 0.02, generator=generator)
            elif name.endswith(".kernel"):
                std = p.shape[1] ** -0.5 / 0.87962566103423978  # jax's truncated normal at 2 stds, unit variance
                torch.nn.init.trunc_normal_(p, 0.0, std, -2 * std, 2 * std, generator=generator)
        return flat.to(self.device)

    def from_flax(self, nets) -> object:
        """Flat [S, P] weights from madloop's stacked Flax parameters (leading axis: seeds)."""
        torch = self.torch
        nets = {k: np.asarray(v) for k, v in _flatten(nets).items()}
        S, w = next(iter(nets.values())).shape[0], self.width
        flat = torch.zeros(S, self.size)
        views = self.views(flat)

        def put(name, value):
            views[name].copy_(torch.from_numpy(np.array(value).reshape(views[name].shape)))

        put("embed", nets["Embed_0/embedding"])
        put("position", nets["position"])
        b = 0
        while f"Block_{b}/Dense_0/kernel" in nets:
            blk, att = f"Block_{b}", f"Block_{b}/MultiHeadDotProductAttention_0"
            put(f"{b}.ln1.scale", nets[f"{blk}/LayerNorm_0/scale"])
            put(f"{b}.ln1.bias", nets[f"{blk}/LayerNorm_0/bias"])
            kernels = [nets[f"{att}/{n}/kernel"].reshape(S, w, w) for n in ("query", "key", "value")]
            put(f"{b}.qkv.kernel", np.concatenate(kernels, -1))
            put(
                f"{b}.qkv.bias",
                np.concatenate([nets[f"{att}/{n}/bias"].reshape(S, w) for n in ("query", "key", "value")], -1),
            )
            put(f"{b}.out.kernel", nets[f"{att}/out/kernel"].reshape(S, w, w))
            put(f"{b}.out.bias", nets[f"{att}/out/bias"])
            put(f"{b}.ln2.scale", nets[f"{blk}/LayerNorm_1/scale"])
            put(f"{b}.ln2.bias", nets[f"{blk}/LayerNorm_1/bias"])
            # Flax names the MLP's outer Dense(width) first (Dense_0): it is built before its argument Dense(4 width)
            put(f"{b}.mlp1.kernel", nets[f"{blk}/Dense_1/kernel"])
            put(f"{b}.mlp1.bias", nets[f"{blk}/Dense_1/bias"])
            put(f"{b}.mlp2.kernel", nets[f"{blk}/Dense_0/kernel"])
            put(f"{b}.mlp2.bias", nets[f"{blk}/Dense_0/bias"])
            b += 1
        put("ln.scale", nets["LayerNorm_0/scale"])
        put("ln.bias", nets["LayerNorm_0/bias"])
        put("readout.kernel", nets["Dense_0/kernel"])
        put("readout.bias", nets["Dense_0/bias"])
        return flat.to(self.device)

    def train(self, flat, tokens, w, steps: int, batch: int, generator=None, indices=None):
        """``steps`` AdamW steps from the flat weights [S, P] on token rows [S, n, L] (int64) with row weights
        [S, n]; minibatch rows drawn per seed by inverse CDF (``generator``, on the weights' device), or given as
        ``indices`` [S, steps, batch]. Returns (the trained flat weights, their EMA, the losses [S, steps]); on a GPU
        after the device has finished them (synchronised, so that a timer around the call is right)."""
        torch = self.torch
        S, dev = flat.shape[0], flat.device
        tokens, w = tokens.to(dev), w.to(dev)
        indices = None if indices is None else indices.to(dev)
        flat = flat.clone()
        params = self.views(flat)
        for p in params.values():
            p.requires_grad_()
        names = list(params)
        m, v, ema = torch.zeros_like(flat), torch.zeros_like(flat), flat.clone()
        cdf = torch.cumsum(w, 1) / w.sum(1, keepdim=True)
        seed_rows = torch.arange(S, device=dev)[:, None]
        out = torch.empty(S, steps, device=dev)
        for i in range(steps):
            if indices is None:
                u = torch.rand(S, batch, generator=generator, device=dev)
                idx = torch.searchsorted(cdf, u, right=True).clamp_(max=tokens.shape[1] - 1)
            else:
                idx = indices[:, i]
            for p in params.values():
                p.grad = None
            total, per_seed = self.loss_sum(params, tokens[seed_rows, idx])
            total.backward()
            out[:, i] = per_seed
            grad = torch.cat([params[n].grad.reshape(S, -1) for n in names], 1)
            scalars = (
                self.lr * 0.5 * (1 + math.cos(math.pi * i / steps)),
                1 - 0.9 ** (i + 1),
                1 - 0.999 ** (i + 1),
                min(self.ema, (1.0 + i) / (10.0 + i)),
            )
            with torch.no_grad():
                self.update(flat, grad, m, v, ema, *(torch.tensor(c, device=dev) for c in scalars))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return flat.detach(), ema, out

    def loss(self, flat, tokens):
        """Each seed's mean cross-entropy [S] of token rows [S, n, L] under the flat weights [S, P]."""
        with self.torch.no_grad():
            return self.losses(self.views(flat), tokens.to(flat.device)).cpu()


def _flatten(tree, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        name = f"{prefix}/{k}" if prefix else k
        out.update(_flatten(v, name) if isinstance(v, dict) else {name: v})
    return out


def madloop_side(cfg, vocab: int, length: int, seeds: int, n: int, seed: int = 0):
    """(the jitted, vmapped fit ``fit(keys, params, x)``, keys, initial params, rows x [S, n, L], weights [n]).

    The rows are each seed's own draw of n rows of the preset's Markov language (over ``vocab`` tokens, rows of
    ``length``); the weights are generation 0's (all 1)."""
    import jax
    import jax.numpy as jnp

    from madloop.data import make_source
    from madloop.data.discrete import MarkovData
    from madloop.models.transformer import transformer_family
    from madloop.precision import precision

    source = make_source(MarkovData(vocab=vocab, order=1, length=length, alpha=1.0))  # the preset's, at V and L
    model = transformer_family(cfg, vocab, length)
    keys = jax.random.split(jax.random.key(seed), 3 * seeds).reshape(3, seeds)
    x = jax.jit(jax.vmap(lambda k: source.sample(k, n)))(keys[0])
    w = jnp.ones(n)
    init = jax.jit(lambda k, x: model.init(k, x, w))  # one seed's program (vmapped, Flax's init compiles 2x longer)
    params = jax.tree.map(lambda *p: jnp.stack(p), *(init(keys[1, s], x[s]) for s in range(seeds)))
    knobs = {"lr": jnp.float32(cfg.lr), "ema": jnp.float32(cfg.ema)}
    fit = jax.jit(jax.vmap(lambda k, p, x, knobs: model.fit(k, p, x, w, False, knobs), in_axes=(0, 0, 0, None)))

    def run(k, p, x):  # at the loop's matmul precision (madloop.precision: true float32, no TF32 on a GPU)
        with precision("float32"):
            return fit(k, p, x, knobs)

    return run, keys[2], params, x, w, model


def agreement(
    cfg, vocab: int, length: int, seeds: int = 2, n: int = 64, steps: int = 5, references=({},), device: str = "cpu"
) -> list:
    """madloop's fit and the reference from the same weights on the same minibatches.

    Runs ``steps`` steps of madloop's family (its cosine schedule over ``steps``) and, for each dict of
    ``references``, of ``BatchedTorchLM`` built with those overrides (``{}``: the benchmark's reference;
    ``{"causal": False}``, ``{"lr": ...}``: deliberately wrong ones), from madloop's initial weights, with madloop's
    own row draws. Returns per reference each seed's training-set loss before the fit (step 0) and after it on both
    sides, their largest relative differences and ``agree`` (both within ``LOSS_RTOL``).
    """
    import dataclasses

    import jax
    import jax.numpy as jnp
    import torch

    from madloop.precision import precision

    cfg = dataclasses.replace(cfg, train_steps=steps)
    fit, keys, params, x, w, model = madloop_side(cfg, vocab, length, seeds, n)
    trained = jax.block_until_ready(fit(keys, params, x))

    # the family's fit draws step i's rows as row_sampler(w)(fold_in(its key, i), batch): the same rows for the
    # reference (its uniforms, then the inverse CDF of the same float32 cdf; numpy's searchsorted compiles nothing)
    def draw(k, i):
        return jax.random.uniform(jax.random.fold_in(k, i), (cfg.batch,))

    uniform = jax.jit(jax.vmap(jax.vmap(draw, (None, 0)), (0, None)))
    cdf = np.asarray(jnp.cumsum(w) / jnp.sum(w))
    idx = np.minimum(np.searchsorted(cdf, np.asarray(uniform(keys, np.arange(steps))), side="right"), n - 1)
    idx = torch.from_numpy(idx.astype(np.int64))
    tokens = torch.from_numpy(np.asarray(x).round().astype(np.int64))  # T.as_tokens
    log_prob = jax.jit(jax.vmap(model.density.log_prob))
    with precision("float32"):  # the loop's matmul precision, as the fit's
        ours0 = -np.asarray(log_prob(params, x)).mean(1) / length
        ours = -np.asarray(log_prob(trained, x)).mean(1) / length
    out = []
    for wrong in references:
        settings = dict(lr=cfg.lr, weight_decay=cfg.weight_decay, ema=cfg.ema) | wrong
        ref = BatchedTorchLM(vocab, length, cfg.width, cfg.depth, cfg.heads, device=device, **settings)
        flat = ref.from_flax(jax.device_get(params.net))
        ref0 = ref.loss(flat, tokens).numpy()
        refs = ref.loss(ref.train(flat, tokens, torch.ones(seeds, n), steps, cfg.batch, indices=idx)[0], tokens).numpy()
        d0 = float(np.max(np.abs(ours0 - ref0) / np.abs(ours0)))
        dk = float(np.max(np.abs(ours - refs) / np.abs(ours)))
        out.append(
            {
                "reference": wrong,
                "loss0": [ours0.tolist(), ref0.tolist()],
                "loss_after": [ours.tolist(), refs.tolist()],
                "steps": steps,
                "rel0": d0,
                "rel_after": dk,
                "agree": d0 < LOSS_RTOL and dk < LOSS_RTOL,
            }
        )
    return out


def measure(
    seeds: int, steps: int, repeats: int = 2, compile_torch: bool = True, threads=None, overrides=(), device="cpu"
) -> dict:
    """Seconds of ``steps`` training steps for ``seeds`` seeds: madloop (first call, then the median of ``repeats``
    steady calls), the eager reference (median of ``repeats``), the compiled reference (first, then median).

    PyTorch runs with ``threads`` intra-op threads; None: the faster of its default and 1 on 5 eager steps (on a
    loaded machine OpenMP's spinning threads slowed its small ops by 10x: 600 ms a step at 2 threads, 40 ms at 1)."""
    import dataclasses

    import jax
    import torch

    cfg, vocab, length, n = preset_sizes(tuple(overrides))
    cfg = dataclasses.replace(cfg, train_steps=steps)
    fit, keys, params, x, w, _ = madloop_side(cfg, vocab, length, seeds, n, seed=1)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        jax.block_until_ready(fit(keys, params, x))
        times.append(time.perf_counter() - t0)
    out = {"seeds": seeds, "steps": steps, "madloop_first": times[0], "madloop_steady": statistics.median(times[1:])}
    out["madloop_steady_all"] = times[1:]
    tok = torch.from_numpy(np.asarray(x).round().astype(np.int64))  # T.as_tokens
    w_t = torch.ones(seeds, n)
    settings = dict(lr=cfg.lr, weight_decay=cfg.weight_decay, ema=cfg.ema)
    default_threads = torch.get_num_threads()
    if threads is None and device == "cpu":
        probe = BatchedTorchLM(vocab, length, cfg.width, cfg.depth, cfg.heads, **settings)
        flat = probe.init(seeds, torch.Generator().manual_seed(0))
        seconds = {}
        for t in sorted({default_threads, 1}):
            torch.set_num_threads(t)
            probe.train(flat, tok, w_t, 1, cfg.batch)
            t0 = time.perf_counter()
            probe.train(flat, tok, w_t, 5, cfg.batch)
            seconds[t] = time.perf_counter() - t0
        threads = min(seconds, key=seconds.get)
        out["torch_thread_probe"] = seconds
    threads = threads or default_threads
    torch.set_num_threads(threads)
    out["torch_threads"], out["torch_device"] = threads, device
    for name, compiled in (("torch_eager", False), ("torch_compiled", True)):
        if compiled and not compile_torch:
            continue
        ref = BatchedTorchLM(
            vocab, length, cfg.width, cfg.depth, cfg.heads, compiled=compiled, device=device, **settings
        )
        flat = ref.init(seeds, torch.Generator().manual_seed(seeds))
        g = torch.Generator(device=device).manual_seed(seeds)
        times = []
        warm = compiled or device != "cpu"  # a first call apart: compilation, or CUDA's lazy start-up
        try:
            for _ in range(repeats + warm):
                t0 = time.perf_counter()
                ref.train(flat, tok, w_t, steps, cfg.batch, generator=g)
                times.append(time.perf_counter() - t0)
        except Exception as e:  # noqa: BLE001  (a compile failure is a result: reported)
            out[f"{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
            continue
        if warm:
            out[f"{name}_first"], times = times[0], times[1:]
        out[name], out[f"{name}_all"] = statistics.median(times), times
    torch.set_num_threads(default_threads)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[4, 16])
    p.add_argument("--steps", type=int, default=None, help="training steps per call (default: model.train_steps)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile reference")
    p.add_argument("--threads", type=int, default=None, help="PyTorch's threads (default: the faster of its own and 1)")
    p.add_argument("--json", default=None, help="also write the agreement check and the timings to this file")
    p.add_argument("--torch-device", default=None, help="cpu or cuda (default: cuda where JAX runs on a GPU too)")
    a = p.parse_args()
    import jax
    import torch

    gpu = jax.devices()[0].platform == "gpu" and torch.cuda.is_available()
    device = a.torch_device or ("cuda" if gpu else "cpu")

    cfg, vocab, length, n = preset_sizes()
    steps = a.steps or cfg.train_steps
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}; "
        f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} "
        f"threads)\n{PRESET}: V = {vocab}, L = {length}, width {cfg.width}, depth {cfg.depth}, {cfg.heads} heads, "
        f"batch {cfg.batch}, {n} rows per seed, {steps} steps per call"
    )
    print(f"PyTorch on {device}" + (f" ({torch.cuda.get_device_name()})" if device == "cuda" else ""))
    check = agreement(cfg, vocab, length, device=device)[0]
    print(
        f"agreement ({check['steps']} steps from madloop's weights on madloop's batches): step-0 loss rel. diff "
        f"{check['rel0']:.1e}, loss after rel. diff {check['rel_after']:.1e} (tolerance {LOSS_RTOL:.0e}): "
        f"{'agree' if check['agree'] else 'DISAGREE'}"
    )
    rows = []
    for seeds in a.seeds:
        r = measure(seeds, steps, a.repeats, not a.no_compile, a.threads, device=device)
        rows.append(r)
        ml, first = r["madloop_steady"], r["madloop_first"]
        line = f"S = {seeds:3d}: madloop {first:.2f} s first / {ml:.2f} s steady (median of {a.repeats})"
        line += f"; PyTorch at {r['torch_threads']} thread(s) (probe, s per 5 steps: {r.get('torch_thread_probe')})"
        for name in ("torch_eager", "torch_compiled"):
            if name in r:
                pre = f"{r[name + '_first']:.2f} s first / " if name + "_first" in r else ""
                line += f"; {name} {pre}{r[name]:.2f} s: ratio {r[name] / ml:.2f}x steady"
                if name + "_first" in r:
                    line += f", {r[name + '_first'] / first:.2f}x first calls"
            elif name + "_error" in r:
                line += f"; {name} failed: {r[name + '_error']}"
        print(line, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"agreement": check, "rows": rows}, f, indent=1)
    if not check["agree"]:
        raise SystemExit("the reference and madloop disagree: the ratios compare different computations")


if __name__ == "__main__":
    main()
