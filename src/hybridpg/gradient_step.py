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
from hybridpg.optim import LeanAdam, masked_adam_update
from hybridpg.stacked import StackedAdam, clip_grad_norm_per_seed


def _threshold(stop_above: float | None) -> torch.Tensor:
    """The early stop's threshold as a graph input (infinite: no stop), in float64 like the eager check.
    Shape [1], not 0-d: dynamo would treat a 0-d input as a number and guard its value in Python."""
    return torch.tensor([math.inf if stop_above is None else stop_above], dtype=torch.float64)


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
    """Called as ``step(*batch, rows=..., stop_above=...)``: one step of ``optimizer`` on
    ``loss_fn(*modules, *batch)``.

    Returns the loss function's output and whether the step was taken: it is skipped (nothing
    moves, not even Adam's step count) when ``stop_above`` is a number and the output's ``stop_on``
    field exceeds it. ``rows`` is the update's usual minibatch size: compiled, only that size runs
    through the graph, others (a last, partial minibatch) run eagerly. The loss must use every
    trainable parameter of ``modules`` (those are the optimizer's flat buffer, which the compiled
    graph differentiates; eager Adam would skip a parameter left without a gradient).
    """

    def __init__(self, loss_fn: Callable[..., Any], modules: Sequence[nn.Module], optimizer: LeanAdam,
                 max_grad_norm: float, compile: bool = False, stop_on: str = "approx_kl") -> None:
        self.loss_fn, self.modules, self.optimizer = loss_fn, tuple(modules), optimizer
        self.max_grad_norm, self.compile, self.stop_on = max_grad_norm, compile, stop_on
        self.params = [p for m in self.modules for p in m.parameters() if p.requires_grad]
        self.bound = _Bound(loss_fn, self.modules)
        self._cached_layout: tuple[list[int], tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]] | None = None

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
        threshold = _threshold(stop_above)
        settings = (*self._layout(buffers.params), self.stop_on, self.max_grad_norm, beta1, beta2, group["eps"])
        state = (buffers.param, buffers.exp_avg, buffers.exp_avg_sq, hyper, threshold)
        with torch.no_grad():
            out, go = compiled_call(_adam_step_graph, self.bound, settings, *state, *batch, cpp_wrapper=True)
        taken = bool(go)  # the graph's own decision, so the step count agrees with what moved
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

    def _layout(self, params: list[torch.Tensor]) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...]]:
        """The bound module's names of the flat buffer's ``params`` and their shapes, in buffer order."""
        if self._cached_layout is None or self._cached_layout[0] != [id(p) for p in params]:
            by_id = {id(p): name for name, p in self.bound.named_parameters()}
            layout = tuple(by_id[id(p)] for p in params), tuple(tuple(p.shape) for p in params)
            self._cached_layout = ([id(p) for p in params], layout)
        return self._cached_layout[1]


def _adam_step_graph(bound: nn.Module, settings: tuple[Any, ...], theta: torch.Tensor, exp_avg: torch.Tensor,
                     exp_avg_sq: torch.Tensor, hyper: torch.Tensor, threshold: torch.Tensor,
                     *batch: Any) -> tuple[Any, torch.Tensor]:
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
    # masked_adam_update's formula with one row, bias corrections precomputed outside: fewer scalar kernels
    new_avg = torch.lerp(exp_avg, grad, 1 - beta1)
    new_avg_sq = exp_avg_sq * beta2 + grad * grad * (1 - beta2)
    denom = new_avg_sq.sqrt() / hyper[1] + eps
    theta.copy_(torch.where(go, theta + hyper[0] * (new_avg / denom), theta))
    exp_avg.copy_(torch.where(go, new_avg, exp_avg))
    exp_avg_sq.copy_(torch.where(go, new_avg_sq, exp_avg_sq))
    return out, go


class StackedGradientStep:
    """``GradientStep`` for N seeds side by side (``seed_updates.py``), on ``StackedAdam``.

    ``loss_of(tensors, layout, *batch)`` computes the seeds' losses (``[N]``) from the stacked
    parameter tensors; a call ``step(active, *batch, rows=..., stop_above=...)`` returns its output and the
    seeds that took the step: those ``active`` whose ``stop_on`` statistic did not exceed
    ``stop_above``. The others' parameters, moments and step counts do not move. Gradients are
    clipped per seed. Compiled, the whole step is one graph, as for a single run.
    """

    def __init__(self, loss_of: Callable[..., Any], layout: tuple[Any, ...], tensors: Sequence[torch.Tensor],
                 adam: StackedAdam, max_grad_norm: float, compile: bool = False, stop_on: str = "approx_kl") -> None:
        self.loss_of, self.layout, self.tensors, self.adam = loss_of, layout, tuple(tensors), adam
        self.max_grad_norm, self.compile, self.stop_on = max_grad_norm, compile, stop_on
        trainable = {id(p) for p in adam.params}
        self.trainable = tuple(i for i, t in enumerate(self.tensors) if id(t) in trainable)
        # StackedAdam's [N, P] moments are laid out in its parameters' order, which the graph follows
        assert [id(self.tensors[i]) for i in self.trainable] == [id(p) for p in adam.params]

    def __call__(self, active: torch.Tensor, *batch: Any, rows: int,
                 stop_above: float | None) -> tuple[Any, torch.Tensor]:
        usual = isinstance(batch[0], torch.Tensor) and batch[0].shape[1] == rows
        if not (self.compile and usual):
            return self.eager(active, batch, stop_above)
        adam = self.adam
        threshold = _threshold(stop_above)
        settings = (self.layout, self.trainable, self.stop_on, self.max_grad_norm, *adam.betas, adam.eps)
        state = (adam.flat_avg, adam.flat_avg_sq, adam.steps, adam.learning_rates(), active, threshold)
        with torch.no_grad():
            out, taken = compiled_call(_stacked_adam_step_graph, self.loss_of, settings, self.tensors, *state, *batch)
        return out, taken

    def eager(self, active: torch.Tensor, batch: tuple[Any, ...], stop_above: float | None) -> tuple[Any, torch.Tensor]:
        out = self.loss_of(self.tensors, self.layout, *batch)
        taken = active
        if stop_above is not None:  # checked before the step; a seed past it takes none
            taken = active & ~(getattr(out, self.stop_on).detach().double() > stop_above)
        if bool(taken.any()):
            self.adam.zero_grad()
            # seeds are independent: the sum's gradient is each one's
            torch.where(taken, out.loss, 0.0).sum().backward()
            clip_grad_norm_per_seed(self.adam.params, self.max_grad_norm)
            self.adam.step(taken)
        return out, taken


def _stacked_adam_step_graph(loss_of: Callable[..., Any], settings: tuple[Any, ...], tensors: tuple[torch.Tensor, ...],
                             exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, steps: torch.Tensor, lrs: torch.Tensor,
                             active: torch.Tensor, threshold: torch.Tensor, *batch: Any) -> tuple[Any, torch.Tensor]:
    """The compiled seeds' step: ``StackedGradientStep.eager``'s backward, clip and ``StackedAdam.step``."""
    layout, trainable, stop_on, max_norm, beta1, beta2, eps = settings

    def loss_of_trainable(train: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, Any]:
        full = list(tensors)
        for i, t in zip(trainable, train, strict=True):
            full[i] = t
        out = loss_of(full, layout, *batch)
        return out.loss.sum(), out  # seeds are independent: the sum's gradient is each one's

    params = tuple(tensors[i] for i in trainable)
    grads, out = torch.func.grad(loss_of_trainable, has_aux=True)(params)
    seeds = active.shape[0]
    grad = torch.cat([g.reshape(seeds, -1) for g in grads], dim=1)
    grad = grad * (max_norm / (grad.norm(dim=1, keepdim=True) + 1e-6)).clamp_max(1.0)
    taken = active & ~(getattr(out, stop_on).to(torch.float64) > threshold)
    update = masked_adam_update(exp_avg, exp_avg_sq, steps, lrs, grad, taken, (beta1, beta2), eps)
    for p, u in zip(params, update.split([p[0].numel() for p in params], dim=1), strict=True):
        p.sub_(u.view_as(p))
    return out, taken
