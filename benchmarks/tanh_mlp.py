"""An experiment for ``ppo_step.py``: a whole Tanh MLP as one autograd node, backward written out.

Not part of the library: measured against plain autograd on PPO's 64-64 networks it was no faster
(BENCHMARKS.md, on-policy throughput), so ``networks.py`` keeps plain autograd. The hypothesis was
that plain autograd's three nodes per Linear-Tanh layer (the weight's transpose, the addmm, the
tanh) cost more than the arithmetic. ``TanhMLPFunction`` runs the same
forward (``addmm`` per layer, ``tanh`` between layers, as ``F.linear`` does for a 2-D input) keeping
the hidden activations, and its backward uses them directly: ``tanh'(z) = 1 - h^2``
(``tanh_backward``), ``mm`` for weight and input gradients, ``sum`` over rows for bias gradients.

Double backward (``create_graph=True``, as the natural-gradient step's Fisher-vector products use)
is supported by recomputing the plain-autograd forward inside the backward and differentiating
that, so the gradients it returns stay connected to the parameters.
"""

from __future__ import annotations

from typing import Any

import torch


def plain_tanh_mlp(x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The reference forward: Linear layers ``(w0, b0, w1, b1, ...)`` with tanh between them."""
    n = len(params) // 2
    for i in range(n):
        x = torch.nn.functional.linear(x, params[2 * i], params[2 * i + 1])
        if i < n - 1:
            x = torch.tanh(x)
    return x


class TanhMLPFunction(torch.autograd.Function):
    """``apply(x, w0, b0, w1, b1, ...)``: a 2-D input through Linear layers with tanh between them."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        n = len(params) // 2
        hidden = []
        h = x
        for i in range(n - 1):
            h = torch.addmm(params[2 * i + 1], h, params[2 * i].t()).tanh_()
            hidden.append(h)
        out = torch.addmm(params[-1], h, params[-2].t())
        ctx.save_for_backward(x, *params, *hidden)
        ctx.n_layers = n
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        n = ctx.n_layers
        saved = ctx.saved_tensors
        x, params, hidden = saved[0], saved[1 : 1 + 2 * n], saved[1 + 2 * n :]
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():
            return _differentiable_backward(x, params, grad_out, needs)
        grads: list[torch.Tensor | None] = [None] * (1 + 2 * n)
        g = grad_out
        for i in range(n - 1, -1, -1):
            inp = x if i == 0 else hidden[i - 1]
            if needs[1 + 2 * i]:
                grads[1 + 2 * i] = g.t().mm(inp)
            if needs[2 + 2 * i]:
                grads[2 + 2 * i] = g.sum(0)
            if i > 0:
                g = torch.ops.aten.tanh_backward(g.mm(params[2 * i]), hidden[i - 1])
            elif needs[0]:
                grads[0] = g.mm(params[0])
        return tuple(grads)


def _differentiable_backward(
    x: torch.Tensor, params: tuple[torch.Tensor, ...], grad_out: torch.Tensor, needs: tuple[bool, ...]
) -> tuple[torch.Tensor | None, ...]:
    """Backward under ``create_graph``: the gradients of a recomputed plain-autograd forward."""
    inputs = (x, *params)
    wanted = [t for t, need in zip(inputs, needs, strict=True) if need]
    with torch.enable_grad():
        out = plain_tanh_mlp(x, params)
        found = iter(torch.autograd.grad(out, wanted, grad_out, create_graph=True, allow_unused=True))
    return tuple(next(found) if need else None for need in needs)


def tanh_mlp(x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Forward of Linear layers ``(w0, b0, w1, b1, ...)`` with tanh between them.

    One autograd node when gradients are being recorded for a 2-D input; plain ops otherwise (under
    ``no_grad``/``inference_mode`` there is no graph to save activations for).
    """
    if torch.is_grad_enabled() and x.dim() == 2:
        out: torch.Tensor = TanhMLPFunction.apply(x, *params)
        return out
    return plain_tanh_mlp(x, params)
