"""``n`` independent ReLU MLPs on one shared input, with a hand-written backward (SAC's networks).

Why a hand-written backward: for SAC's 256-256 networks on a CPU, per-op overhead around the
matmuls is a large share of a gradient step (BENCHMARKS.md, SAC: the 8-row-batch step). This one
computes the same gradients as autograd (the tests compare them) with fewer ops and passes:

- the first layer of all members is one ``(in, n*h)`` matmul on the shared input;
- the hidden-to-hidden layers (the bulk of the arithmetic) and their backward products run as
  oneDNN's fused ``relu(x @ w^T + b)`` per member where torch has it: MKL's sgemm takes a slow
  path on AMD CPUs; elsewhere biases are added inside ``baddbmm``; ReLU's backward is one masking pass;
- the first layer's weight gradient and input gradient are taken per member, not on the gradient
  transposed to the first layer's ``(batch, n*h)`` layout (a copy);
- the heads SAC's losses need, the minimum over members (actor loss) and the squared error onto a
  target summed over members (critic loss), are part of the one node (``min_over_members``,
  ``squared_error``), not autograd nodes of their own;
- the output layer's weight is stored ``(n, out, h)`` and the layer computes ``W h^T``, whose
  result is the output transposed (a view): MKL is slow when a matmul's result is thin
  (``benchmarks/thin_matmul.py``, BENCHMARKS.md); its
  weight gradient is ``g^T h`` for the same reason, and for ``out = 1`` the backward is a
  broadcast multiply, not a K=1 matmul;
- weight gradients are skipped where the weights are passed detached (the actor loss through the
  critic), and the input is taken in column blocks (observation, action) of which only those that
  need a gradient get one (the action's in the actor loss, none in the critic's own update).

Members are stacked on a leading dimension, so the output is ``(n, batch, out_dim)`` (a transposed
view of ``(n, out_dim, batch)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def native_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 in hardware; without it oneDNN emulates bf16, far slower
    than fp32 (BENCHMARKS.md, SAC)."""
    cpu: Any = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def _uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:
    # nn.Linear's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound))


def _find_onednn_linear() -> Any:
    """oneDNN's fused ``relu(x @ w^T + b)`` (the op torch.compile's CPU backend emits), or None where
    this torch build lacks it: on CPUs where MKL's sgemm takes a slow path (AMD), it is faster on
    256-wide layers and slower on small products (BENCHMARKS.md, SAC; ``benchmarks/sac_step.py``)."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


_ONEDNN_LINEAR = _find_onednn_linear()


# multiply-adds per member from which oneDNN's per-call overhead pays off (below, MKL is faster)
_ONEDNN_MIN_WORK = 1 << 22


def _onednn(a: torch.Tensor, b: torch.Tensor) -> Any:
    """oneDNN's linear for the per-member product ``a @ b``, or None where ``torch.bmm`` is faster."""
    if a.shape[-2] * a.shape[-1] * b.shape[-1] < _ONEDNN_MIN_WORK:
        return None
    # torch.compile's CPU backend expects this op only with weights it packed itself
    return None if torch.compiler.is_compiling() else _ONEDNN_LINEAR


def _stack(members: list[torch.Tensor]) -> torch.Tensor:
    # one member needs no copy
    return members[0].unsqueeze(0) if len(members) == 1 else torch.stack(members)


def _bmm_relu(bias: torch.Tensor, x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """relu(bias + x @ w) per member; with a reduced ``dtype`` both operands are rounded to it (fp32 accumulate)."""
    if dtype == torch.float32:
        if (linear := _onednn(x, w)) is not None:
            return _stack([linear(x[j], w[j].t(), bias[j, 0], "relu", [], "") for j in range(len(w))])
        return torch.baddbmm(bias, x, w).relu_()
    return torch.bmm(x.to(dtype), w.to(dtype)).float().add_(bias).relu_()


def _grad_bmm(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """a @ b per member (a fresh tensor), in ``dtype`` as ``_bmm_relu``."""
    if dtype == torch.float32:
        if (linear := _onednn(a, b)) is not None:
            return _stack([linear(a[j], b[j].t(), None, "none", [], "") for j in range(len(a))])
        return torch.bmm(a, b)
    return torch.bmm(a.to(dtype), b.to(dtype)).float()


def _relu_backward(grad: torch.Tensor, relu_out: torch.Tensor) -> torch.Tensor:
    """``grad`` masked where the ReLU was off, in place (callers pass a fresh tensor): autograd's own
    one-pass kernel; ``grad * (out > 0)`` would build a bool mask first, and writing in place saves
    an allocation."""
    out: torch.Tensor = torch.ops.aten.threshold_backward.grad_input(grad, relu_out, 0.0, grad_input=grad)
    return out


def _forward(
    x: torch.Tensor, dtype: torch.dtype, w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor,
    b_out: torch.Tensor, hidden: tuple[torch.Tensor, ...],
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The output and every hidden activation (post-ReLU, ``(n, batch, h)`` views)."""
    n, batch = w_out.shape[0], x.shape[0]
    # (batch, n*h) -> (n, batch, h): a strided view, which the batched matmuls take as it is
    h = torch.addmm(b_in, x, w_in).relu_().view(batch, n, -1).transpose(0, 1)
    acts = [h]
    for w, b in zip(hidden[0::2], hidden[1::2], strict=True):
        h = _bmm_relu(b, h, w, dtype)
        acts.append(h)
    # (n, out, h) @ (n, h, batch), returned as its (n, batch, out) view: see the module docstring
    return torch.baddbmm(b_out, w_out, h.transpose(1, 2)).transpose(1, 2), acts


class _EnsembleMLPFunction(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, dtype: torch.dtype, head: str, target: torch.Tensor | None, n_x: int, *args: torch.Tensor
    ) -> Any:
        """``args``: the input's ``n_x`` column blocks, then ``[w_in, b_in, w_out, b_out, w_1, b_1, ...]``.
        ``head`` (one output): "out" the output; "min" its minimum over members; "mse" the squared
        error onto ``target`` summed over members and averaged over rows, and the output (detached)."""
        xs, (w_in, b_in, w_out, b_out, *hidden) = args[:n_x], args[n_x:]
        x = torch.cat(xs, dim=-1) if n_x > 1 else xs[0]
        out, acts = _forward(x, dtype, w_in, b_in, w_out, b_out, tuple(hidden))
        ctx.dtype, ctx.head, ctx.n_x, ctx.n_layers = dtype, head, n_x, len(hidden) // 2
        ctx.widths = [t.shape[-1] for t in xs]
        if head == "out":
            ctx.save_for_backward(x, w_in, w_out, *hidden[0::2], *acts)
            return out
        q = out.squeeze(-1)
        if head == "min":
            q_min, which = q.min(0)
            ctx.save_for_backward(x, w_in, w_out, *hidden[0::2], *acts, which)
            return q_min
        assert target is not None
        err = q - target
        ctx.save_for_backward(x, w_in, w_out, *hidden[0::2], *acts, err)
        ctx.mark_non_differentiable(q)
        return err.pow(2).mean(1).sum(), q

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w_in, w_out, *rest = ctx.saved_tensors
        n_x, n_layers, head = ctx.n_x, ctx.n_layers, ctx.head
        if head == "min":  # the gradient goes to each row's smaller member, as autograd's min routes it
            which = rest.pop()
            grad_out = torch.zeros(w_out.shape[0], x.shape[0], 1).scatter_(0, which.view(1, -1, 1),
                                                                             grads[0].view(1, -1, 1))
        elif head == "mse":  # d/dq of sum_j mean_b err^2: 2 err / batch
            err = rest.pop()
            grad_out = (grads[0] / err.shape[1] * 2.0 * err).unsqueeze(-1)
        else:
            grad_out = grads[0]
        need = ctx.needs_input_grad
        blocks, start = [], 0
        for width, need_block in zip(ctx.widths, need[4:4 + n_x], strict=True):
            blocks.append((start, start + width) if need_block else None)
            start += width
        g_xs, g_params = _backward(x, w_in, w_out, rest[:n_layers], rest[n_layers:], grad_out, ctx.dtype,
                                   any(need[4 + n_x:]), blocks)
        return (None, None, None, None, *g_xs, *g_params)


def _backward(
    x: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor, weights: Sequence[torch.Tensor],
    acts: Sequence[torch.Tensor], grad_out: torch.Tensor, dtype: torch.dtype, need_w: bool,
    x_blocks: Sequence[tuple[int, int] | None],
) -> tuple[list[torch.Tensor | None], list[torch.Tensor | None]]:
    """Gradients of the input's column blocks ``x[:, start:end]`` for each ``(start, end)`` in
    ``x_blocks`` (None where the block is None) and of ``[w_in, b_in, w_out, b_out, w_1, b_1, ...]``
    (None where not ``need_w``)."""
    n_layers = len(weights)
    g_hidden: list[torch.Tensor | None] = [None] * (2 * n_layers)
    g_w_out = g_b_out = None
    h = acts[-1]
    if need_w:
        g_out_t = grad_out.transpose(1, 2)  # (n, out, B)
        g_w_out = torch.bmm(g_out_t, h)
        g_b_out = g_out_t.sum(2, keepdim=True)
    if w_out.shape[1] == 1:  # (n, B, 1) * (n, 1, h): an outer product, cheaper as a broadcast
        g = grad_out * w_out
    else:
        g = torch.bmm(grad_out, w_out)
    g = _relu_backward(g, h)
    for i in range(n_layers - 1, -1, -1):
        prev = acts[i]
        if need_w:
            g_hidden[2 * i] = _grad_bmm(prev.transpose(1, 2), g, dtype)
            g_hidden[2 * i + 1] = g.sum(1, keepdim=True)
        g = _relu_backward(_grad_bmm(g, weights[i].transpose(1, 2), dtype), prev)
    n = g.shape[0]
    if n == 1:  # the first layer's (batch, h) layout is g's own
        g_flat = g[0]
        g_w_in = torch.mm(x.t(), g_flat) if need_w else None
        g_b_in = g_flat.sum(0) if need_w else None
    else:  # per member: g as the first layer's (batch, n*h) would be a transposing copy of g
        g_w_in = torch.bmm(x.t().expand(n, -1, -1), g).transpose(0, 1).reshape(w_in.shape) if need_w else None
        g_b_in = g.sum(1).view(-1) if need_w else None
    # only the blocks that need it (SAC: the action's, not the observation's), each computed
    # transposed, (cols, B), and returned as its (B, cols) view: MKL is slow on thin results
    g_xs: list[torch.Tensor | None] = []
    for block in x_blocks:
        if block is None:
            g_xs.append(None)
        elif n == 1:
            g_xs.append(torch.mm(w_in[block[0]:block[1]], g_flat.t()).t())
        else:
            w_block = w_in[block[0]:block[1]].view(block[1] - block[0], n, -1).transpose(0, 1)
            g_xs.append(torch.bmm(w_block, g.transpose(1, 2)).sum(0).t())
    return g_xs, [g_w_in, g_b_in, g_w_out, g_b_out, *g_hidden]


class EnsembleMLP(nn.Module):
    """``n`` MLPs ``in_dim -> hidden... -> out_dim`` with ReLU, each initialized like ``nn.Linear``.

    ``matmul_dtype`` (e.g. ``torch.bfloat16``) rounds the operands of hidden-to-hidden matmuls
    only; the first and output layers, biases, weights and outputs stay fp32.
    """

    def __init__(
        self, n: int, in_dim: int, hidden: tuple[int, ...], out_dim: int, matmul_dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.n, self.matmul_dtype = n, matmul_dtype
        self.w_in = _uniform((in_dim, n * hidden[0]), in_dim)
        self.b_in = _uniform((n * hidden[0],), in_dim)
        self.w_hidden = nn.ParameterList(_uniform((n, a, b), a) for a, b in zip(hidden[:-1], hidden[1:], strict=True))
        self.b_hidden = nn.ParameterList(_uniform((n, 1, b), a) for a, b in zip(hidden[:-1], hidden[1:], strict=True))
        self.w_out = _uniform((n, out_dim, hidden[-1]), hidden[-1])  # (out, in), like nn.Linear
        self.b_out = _uniform((n, out_dim, 1), hidden[-1])
        # built once: iterating ParameterLists costs more than a step's small ops; in-place updates
        # (optimizers, load_state_dict, .to()) keep these same Parameter objects
        hidden_params: list[nn.Parameter] = []
        for w, b in zip(self.w_hidden, self.b_hidden, strict=True):
            hidden_params += [w, b]
        self._param_list = [self.w_in, self.b_in, self.w_out, self.b_out, *hidden_params]

    def member_weights(self, j: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Member ``j``'s layers as ``(weight (in, out), bias (out,))`` pairs, for reading and tests."""
        h0 = self.b_in.shape[0] // self.n
        layers = [(self.w_in[:, j * h0:(j + 1) * h0], self.b_in[j * h0:(j + 1) * h0])]
        layers += [(w[j], b[j, 0]) for w, b in zip(self.w_hidden, self.b_hidden, strict=True)]
        return [*layers, (self.w_out[j].t(), self.b_out[j, :, 0])]

    def _params(self) -> list[torch.Tensor]:
        """``[w_in, b_in, w_out, b_out, w_1, b_1, ...]``: the order the functions above use."""
        return list(self._param_list)

    def forward(self, *xs: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """``(n, batch, out_dim)`` on the input ``xs`` concatenated on the last dimension (e.g.
        observation and action: only the blocks that need a gradient get one). ``detached``:
        gradients reach the input but not the weights."""
        out: torch.Tensor = self._apply_head("out", None, xs, detached)
        return out

    def min_over_members(self, *xs: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """``self(*xs).min(0).values.squeeze(-1)`` for one output, ``(batch,)``, as one autograd node."""
        if not self._recorded(xs, detached):
            return self(*xs, detached=detached).squeeze(-1).min(0).values
        out: torch.Tensor = self._apply_head("min", None, xs, detached)
        return out

    def squared_error(self, *xs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(q - target).pow(2).mean(1).sum()`` for ``q = self(*xs).squeeze(-1)`` (one output), as
        one autograd node, and ``q`` without gradient."""
        if not self._recorded(xs, False):
            q = self(*xs).squeeze(-1)
            return (q - target).pow(2).mean(1).sum(), q
        loss, q = self._apply_head("mse", target, xs, False)
        return loss, q

    def _recorded(self, xs: tuple[torch.Tensor, ...], detached: bool) -> bool:
        return torch.is_grad_enabled() and (any(x.requires_grad for x in xs)
                                            or (not detached and any(p.requires_grad for p in self._param_list)))

    def _apply_head(
        self, head: str, target: torch.Tensor | None, xs: tuple[torch.Tensor, ...], detached: bool
    ) -> Any:
        params = [p.detach() for p in self._param_list] if detached else self._param_list
        if self._recorded(xs, detached):
            return _EnsembleMLPFunction.apply(self.matmul_dtype, head, target, len(xs), *xs, *params)
        x = torch.cat(xs, dim=-1) if len(xs) > 1 else xs[0]
        return _forward(x, self.matmul_dtype, params[0], params[1], params[2], params[3], tuple(params[4:]))[0]
