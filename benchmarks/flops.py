"""Matrix-product FLOPs of a JAX function, counted on its jaxpr: what "share of the matmul peak" divides by.

``matmul_flops(fn, *args)`` traces ``fn`` and sums 2 x (multiply-adds) over every ``dot_general`` and
``conv_general_dilated`` it runs, descending into sub-programs: a ``scan`` body counts ``length`` times, a ``cond``
counts its most expensive branch, ``jit``/``custom_jvp``/``custom_vjp``/``remat`` bodies count once. A ``while``
loop has no trip count in its jaxpr, so it raises rather than guess, as does a transposed convolution
(``lhs_dilation``). Decompositions and solves (``cholesky``, ``triangular_solve``) count 0. Elementwise work
(activations, norms, the optimizer, random numbers) is not counted: it is the overhead a training step pays on top
of its matmuls.

Counting the traced program, not a formula, means the count follows the network actually built (the U-Net's
convolutions, the time embedding, a backward pass that skips the input's gradient) and the seeds it is vmapped
over (a vmapped product has a batch dimension, and its output shape carries it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core

_ONCE = ("pjit", "jit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr",
         "remat", "remat2", "checkpoint", "custom_lin", "shard_map")  # fmt: skip


def _open(value: Any) -> Any:
    """The jaxpr with equations inside a closed jaxpr (jax <= 0.11), or the jaxpr itself (0.12 merged the two)."""
    return value if hasattr(value, "eqns") else value.jaxpr


def _sub_jaxprs(value: Any) -> list[Any]:
    if isinstance(value, (jax.extend.core.ClosedJaxpr, jax.extend.core.Jaxpr)):
        return [_open(value)]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in _sub_jaxprs(v)]
    return []


def _product_flops(eqn: Any) -> int:
    out = math.prod(eqn.outvars[0].aval.shape)
    if eqn.primitive.name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return 2 * out * math.prod(lhs[c] for c in contract)
    if any(d != 1 for d in eqn.params.get("lhs_dilation") or ()):
        # a transposed convolution (or a strided one's input gradient): out x taps x c_in would count the zeros
        # inserted between the inputs; no network here has one, so refuse rather than overcount
        raise ValueError("matmul_flops: convolutions with lhs_dilation are not counted (transposed convolutions)")
    rhs = eqn.invars[1].aval.shape  # conv_general_dilated: kernel (out features, in features per group, spatial...)
    spec = eqn.params["dimension_numbers"].rhs_spec
    return 2 * out * rhs[spec[1]] * math.prod(rhs[i] for i in spec[2:])


def jaxpr_flops(jaxpr: Any) -> int:
    """Matrix-product FLOPs of one run of ``jaxpr`` (see the module docstring)."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name in ("dot_general", "conv_general_dilated"):
            total += _product_flops(eqn)
            continue
        subs = [j for v in eqn.params.values() for j in _sub_jaxprs(v)]
        if not subs:
            continue
        if name == "scan":
            total += eqn.params["length"] * sum(jaxpr_flops(j) for j in subs)
        elif name == "cond":
            total += max(jaxpr_flops(j) for j in subs)
        elif name == "while":
            if any(jaxpr_flops(j) for j in subs):
                raise ValueError("matmul_flops: a while loop runs matrix products an unknown number of times")
        elif name in _ONCE or name.startswith("custom_"):
            total += sum(jaxpr_flops(j) for j in subs)
        else:
            raise ValueError(f"matmul_flops: no rule for sub-programs of the primitive {name!r}")
    return total


def matmul_flops(fn: Callable, *args: Any) -> int:
    """Matrix-product FLOPs of one call ``fn(*args)`` (traced, not run)."""
    return jaxpr_flops(_open(jax.make_jaxpr(fn)(*args)))
