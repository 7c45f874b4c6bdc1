"""One minibatch's gradient step of the on-policy updates: loss, early-stop check, backward,
global-norm clip and Adam, in that order.

Eager (the default), it is ordinary autograd: the loss function's forward, ``backward()``,
``networks.clip_grad_norm`` and ``LeanAdam.step()``. With ``compile=True`` the whole step is one
``torch.compile`` graph: the gradient of the same loss function comes from ``torch.func.grad`` over
the optimizer's flat parameter buffer, and the clip and Adam's update act on that buffer inside the
graph, so a step is one call instead of about two hundred small eager kernels and the autograd
engine's bookkeeping. The early-stop check happens inside the graph too, before anything moves,
and masks the update exactly where the eager step would have returned without one.

The loss functions stay plain functions of modules and tensors (``ppo_minibatch_loss``,
``props_minibatch_loss``) returning a NamedTuple whose ``loss`` field is minimized; ``stop_on``
names the field that the early stop compares with its threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from hybridpg.compiled import compiled_call
from hybridpg.networks import clip_grad_norm
from hybridpg.optim import LeanAdam


class _Bound(nn.Module):
    """``loss_fn(*modules, *batch)`` as one module, so ``torch.func.functional_call`` can swap the
    parameters of all of them at once."""

    def __init__(self, loss_fn: Callable[..., Any], modules: Sequence[nn.Module]) -> None:
        super().__init__()
        self.loss_fn = loss_fn
        self.parts = nn.ModuleList(modules)

    def forward(self, *batch: Any) -> Any:
        return self.loss_fn(*self.parts, *batch)


class GradientStep:
    """``step(*batch, rows=..., stop_above=...)``: one step of ``optimizer`` on ``loss_fn(*modules, *batch)``.

    Returns the loss function's output and whether the step was taken: it is skipped (nothing
    moves, not even Adam's step count) when ``stop_above`` is a number and the output's ``stop_on``
    field exceeds it. ``rows`` is the update's usual minibatch size: compiled, only that size runs
    through the graph, others (a last, partial minibatch) run eagerly.
    """

    def __init__(self, loss_fn: Callable[..., Any], modules: Sequence[nn.Module], optimizer: LeanAdam,
                 max_grad_norm: float, compile: bool = False, stop_on: str = "approx_kl") -> None:
        self.loss_fn, self.modules, self.optimizer = loss_fn, tuple(modules), optimizer
        self.max_grad_norm, self.compile, self.stop_on = max_grad_norm, compile, stop_on
        self.params = [p for m in self.modules for p in m.parameters() if p.requires_grad]
        self.bound = _Bound(loss_fn, self.modules)

    def __call__(self, *batch: Any, rows: int, stop_above: float | None) -> tuple[Any, bool]:
        usual = isinstance(batch[0], torch.Tensor) and batch[0].shape[0] == rows
        flat = self.optimizer.flat_state() if self.compile and usual else None
        if flat is None:  # eager; or another size, or an optimizer whose state left its flat buffers
            return self.eager(batch, stop_above)
        buffers, step_count = flat
        group = self.optimizer.param_groups[0]
        (beta1, beta2), t = group["betas"], float(step_count) + 1
        # Adam's bias corrections for this step, rounded to float32 as LeanAdam's kernels do
        hyper = torch.tensor([-group["lr"] / (1 - beta1**t), math.sqrt(1 - beta2**t)])
        threshold = torch.tensor(math.inf if stop_above is None else stop_above, dtype=torch.float64)
        names = tuple(self._names(buffers.params))
        shapes = tuple(tuple(p.shape) for p in buffers.params)
        settings = (names, shapes, self.stop_on, self.max_grad_norm, beta1, beta2, group["eps"])
        state = (buffers.param, buffers.exp_avg, buffers.exp_avg_sq, hyper, threshold)
        with torch.no_grad():
            out = compiled_call(_adam_step_graph, self.bound, settings, *state, *batch)
        taken = stop_above is None or not float(getattr(out, self.stop_on)) > stop_above
        if taken:
            step_count.add_(1.0)
        return out, taken

    def eager(self, batch: tuple[Any, ...], stop_above: float | None) -> tuple[Any, bool]:
        out = self.loss_fn(*self.modules, *batch)
        if stop_above is not None and float(getattr(out, self.stop_on)) > stop_above:
            return out, False  # checked before the step
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        clip_grad_norm(self.params, self.max_grad_norm)
        self.optimizer.step()
        return out, True

    def _names(self, params: list[torch.Tensor]) -> list[str]:
        """The bound module's names of ``params``, in their order."""
        by_id = {id(p): name for name, p in self.bound.named_parameters()}
        return [by_id[id(p)] for p in params]


def _adam_step_graph(bound: nn.Module, settings: tuple[Any, ...], theta: torch.Tensor, exp_avg: torch.Tensor,
                     exp_avg_sq: torch.Tensor, hyper: torch.Tensor, threshold: torch.Tensor, *batch: Any) -> Any:
    """The compiled step: gradient over the flat buffer ``theta``, clip, check, LeanAdam's update in place."""
    names, shapes, stop_on, max_norm, beta1, beta2, eps = settings

    def loss_of(flat: torch.Tensor) -> tuple[torch.Tensor, Any]:
        sizes = [math.prod(s) for s in shapes]
        params = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes, strict=True)}
        out = torch.func.functional_call(bound, params, batch)
        return out.loss, out

    grad, out = torch.func.grad(loss_of, has_aux=True)(theta)
    scale = max_norm / (grad.norm() + 1e-6)
    grad = torch.where(scale < 1.0, grad * scale, grad)
    go = ~(getattr(out, stop_on).to(torch.float64) > threshold)  # NaN steps, as in the eager check
    new_avg = torch.lerp(exp_avg, grad, 1 - beta1)
    new_avg_sq = exp_avg_sq * beta2 + grad * grad * (1 - beta2)
    denom = new_avg_sq.sqrt() / hyper[1] + eps
    theta.copy_(torch.where(go, theta + hyper[0] * (new_avg / denom), theta))
    exp_avg.copy_(torch.where(go, new_avg, exp_avg))
    exp_avg_sq.copy_(torch.where(go, new_avg_sq, exp_avg_sq))
    return out
