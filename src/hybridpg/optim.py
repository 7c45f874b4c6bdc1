"""A lean Adam for small networks stepped thousands of times per second.

``torch.optim.Adam`` spends more time on per-step Python bookkeeping on CPU (type and device
grouping, step-tensor conversions, profiler hooks) than on the arithmetic of a 64-64 MLP, and PPO
and PROPS take one step per minibatch. ``LeanAdam`` performs the same update (Adam with bias
correction, eps outside the square root, no weight decay, no amsgrad) with a handful of foreach
kernels, and keeps ``torch.optim.Adam``'s state layout, so ``state_dict``/``load_state_dict`` work
unchanged. ``fused=True`` runs torch's own fused Adam kernel (the one
``torch.optim.Adam(fused=True)`` calls, so the steps are bit-identical) without that class's
per-step bookkeeping; it suits large networks, where one fused pass beats six foreach passes.
Unfused, it also keeps each group's trainable parameters and both moments in one flat buffer
each (the parameters and the per-parameter state are views into it), so a step is one cat of the
gradients and seven whole-buffer kernels, not seven kernels per parameter: on CPU torch's foreach
kernels loop over the tensors one by one. The elementwise formula is the same; only elements that
a small tensor's own kernel left to its scalar tail can round differently in the vector loop.
Timings: BENCHMARKS.md (SAC; on-policy throughput).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn


class LeanAdam(torch.optim.Optimizer):
    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        fused: bool = False,
    ) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self.fused = fused
        self.flat = [None if fused else FlatGroup.of(group["params"]) for group in self.param_groups]

    def step(self, closure: Callable[[], Any] | None = None) -> None:  # type: ignore[override]
        assert closure is None, "LeanAdam does not take a closure"
        self.step_without_hooks()

    @torch.no_grad()
    def step_without_hooks(self) -> None:
        """``step()`` minus the hook and profiler wrapper that ``torch.optim.Optimizer`` puts around
        every subclass's ``step``; for hot loops that register no optimizer hooks."""
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            flat = self.flat[index]
            states = self._states(params, flat)
            grads = [p.grad for p in params]
            exp_avg = [s["exp_avg"] for s in states]
            exp_avg_sq = [s["exp_avg_sq"] for s in states]
            steps = [s["step"] for s in states]
            for step in {id(t): t for t in steps}.values():
                step.add_(1.0)
            beta1, beta2 = group["betas"]
            if self.fused:
                torch._fused_adam_(params, grads, exp_avg, exp_avg_sq, [], steps, amsgrad=False, lr=group["lr"],
                                   beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False)
                continue
            if flat is not None and flat.holds(params, exp_avg, exp_avg_sq):  # the whole group in one set of kernels
                params, exp_avg, exp_avg_sq = [flat.param], [flat.exp_avg], [flat.exp_avg_sq]
                grads = [torch.cat([g.reshape(-1) for g in grads])]  # type: ignore[union-attr]
            adam_step(params, grads, exp_avg, exp_avg_sq, float(steps[0]), group["lr"], (beta1, beta2), group["eps"])

    def _states(self, params: list[torch.Tensor], flat: FlatGroup | None) -> list[dict[str, Any]]:
        """The state of each of ``params``, created where missing (same keys and dtypes as torch.optim.Adam)."""
        states = [self.state[p] for p in params]
        if not all(states):
            # parameters that start together share one step tensor, so that counting a step is
            # one op, not one per parameter (state_dict() hands out a copy per parameter)
            step = torch.zeros((), dtype=torch.float32)
            for p, state in zip(params, states, strict=True):
                if not state:
                    state["step"] = step
                    moments = flat.moments_of(p) if flat is not None else None
                    state["exp_avg"], state["exp_avg_sq"] = moments or (
                        torch.zeros_like(p, memory_format=torch.preserve_format),
                        torch.zeros_like(p, memory_format=torch.preserve_format),
                    )
        return states

    def flat_state(self) -> tuple[FlatGroup, torch.Tensor] | None:
        """The one parameter group's flat buffers and its shared step count, for a step that works on
        the buffers directly (``gradient_step``); None where the state does not live there (several
        groups, ``fused``, a re-pointed parameter or moment, per-parameter step counts)."""
        if len(self.param_groups) != 1 or self.flat[0] is None:
            return None
        flat = self.flat[0]
        states = self._states(flat.params, flat)
        step = states[0]["step"]
        moments = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
        if any(s["step"] is not step for s in states) or not flat.holds(flat.params, *moments):
            return None
        return flat, step

    def __getstate__(self) -> dict[str, Any]:
        # torch's Optimizer copies and pickles only defaults, state and param_groups
        state: dict[str, Any] = super().__getstate__()
        state["fused"] = self.fused
        state["flat_groups"] = [flat is not None for flat in self.flat]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        flat_groups = state.pop("flat_groups", [])
        super().__setstate__(state)
        if "flat" in self.__dict__:  # torch's load_state_dict comes through here too: the buffers stay
            return
        self.__dict__.setdefault("fused", False)
        # a copy's parameters share one copied buffer among themselves only, so where the original kept
        # flat buffers the copy gets its own, and its copied moments move into them
        self.flat = []
        for index, group in enumerate(self.param_groups):
            trainable = [p for p in group["params"] if p.requires_grad]
            flat = FlatGroup(trainable) if index < len(flat_groups) and flat_groups[index] else None
            self.flat.append(flat)
            if flat is None:
                continue
            for p in trainable:
                saved, views = self.state.get(p), flat.moments_of(p)
                if saved and views is not None:
                    saved["exp_avg"] = views[0].copy_(saved["exp_avg"])
                    saved["exp_avg_sq"] = views[1].copy_(saved["exp_avg_sq"])

    def state_dict(self) -> dict[str, Any]:
        # one step tensor per parameter, as torch.optim.Adam keeps them: torch's Adam increments
        # each in place, so a shared one loaded there would count a step once per parameter
        out = super().state_dict()
        out["state"] = {k: {**v, "step": v["step"].clone()} for k, v in out["state"].items()}
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group, flat in zip(self.param_groups, self.flat, strict=True):
            states = [self.state[p] for p in group["params"] if self.state.get(p)]
            # torch's loader keeps the caller's tensors, which a step would change in place
            shared = states[0]["step"].clone() if states and len({float(s["step"]) for s in states}) == 1 else None
            for s in states:  # one shared step again where all agree
                s["step"] = shared if shared is not None else s["step"].clone()
            for p in group["params"]:  # the loaded moments move into the flat buffers, or copies
                state, moments = self.state.get(p), flat.moments_of(p) if flat is not None else None
                if state:
                    for key, view in zip(("exp_avg", "exp_avg_sq"), moments or (None, None), strict=True):
                        state[key] = view.copy_(state[key]) if view is not None else state[key].clone()

    def zero_grad(self, set_to_none: bool = True) -> None:
        # the base class wraps this in profiler bookkeeping that costs more than the loop itself
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


class FlatGroup:
    """A parameter group's trainable parameters and its Adam moments, each kept in one flat buffer.

    The parameters' ``.data`` and the optimizer's per-parameter state become views into the
    buffers, so modules, ``state_dict`` and checkpoints see ordinary tensors, while a step can run
    its kernels once over the whole buffer. Anything that re-points a parameter or replaces its
    state (stacking seeds, an outside ``load_state_dict`` of the state) is noticed by ``holds``,
    and the step falls back to one kernel per tensor on whatever memory they now use.
    """

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params = params
        self.param = torch.cat([p.detach().reshape(-1) for p in params])
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.param), torch.zeros_like(self.param)
        sizes = [p.numel() for p in params]
        for p, view in zip(params, self.param.split(sizes), strict=True):
            p.data = view.view_as(p)
        self.pointers = [p.data_ptr() for p in params]
        self.moments = {
            id(p): (m.view_as(p), v.view_as(p))
            for p, m, v in zip(params, self.exp_avg.split(sizes), self.exp_avg_sq.split(sizes), strict=True)
        }

    @classmethod
    def of(cls, params: list[torch.Tensor]) -> FlatGroup | None:
        """The flat buffers for a group's trainable parameters; None where there is nothing to gain
        (fewer than two, mixed dtypes or devices, or a parameter that is already a view)."""
        trainable = [p for p in params if p.requires_grad]
        if len(trainable) < 2 or len({(p.dtype, p.device) for p in trainable}) != 1:
            return None
        if any(p.untyped_storage().nbytes() != p.numel() * p.element_size() for p in trainable):
            return None  # it shares memory with something else already (a stacked seed, a tied weight)
        return cls(trainable)

    def moments_of(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.moments.get(id(p))

    def holds(self, params: list[torch.Tensor], exp_avg: list[torch.Tensor], exp_avg_sq: list[torch.Tensor]) -> bool:
        """Whether ``params`` (those with gradients) and their moments are still exactly this group's views."""
        if len(params) != len(self.params):
            return False
        for p, q, pointer, m, v in zip(params, self.params, self.pointers, exp_avg, exp_avg_sq, strict=True):
            own_m, own_v = self.moments[id(p)]
            if p is not q or p.data_ptr() != pointer or m is not own_m or v is not own_v:
                return False
        return True


def adam_step(params: list[torch.Tensor], grads: list[torch.Tensor], exp_avg: list[torch.Tensor],
              exp_avg_sq: list[torch.Tensor], step_count: float, lr: float, betas: tuple[float, float],
              eps: float) -> None:
    """One Adam update in foreach kernels, ``step_count`` already including this step."""
    beta1, beta2 = betas
    torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sq, beta2)
    torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
    bias1 = 1 - beta1**step_count
    bias2_sqrt = math.sqrt(1 - beta2**step_count)
    denom = torch._foreach_sqrt(exp_avg_sq)
    torch._foreach_div_(denom, bias2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avg, denom, value=-lr / bias1)


def masked_adam_update(exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor, steps: torch.Tensor, lrs: torch.Tensor,
                       grad: torch.Tensor, taken: torch.Tensor, betas: tuple[float, float],
                       eps: float) -> torch.Tensor:
    """Adam for ``N`` independent optimizers at once, on ``[N, P]`` moments and gradients, with step
    counts and lrs ``[N]``: the rows in ``taken`` (bool ``[N]``) count a step and move their moments in
    place; returns the ``[N, P]`` change to subtract from the parameters, exactly 0 in the other rows.

    ``adam_step``'s update, written for seeds side by side (``StackedAdam`` and their compiled step),
    where each seed's early stop is a mask, not a branch."""
    beta1, beta2 = betas
    steps.add_(taken.float())
    counts = steps.double()  # bias corrections in double, as LeanAdam computes them
    bias2_sqrt = torch.sqrt(1 - beta2**counts).float().unsqueeze(1)
    # rows that never stepped have bias1 = 0: their step size is 0, never inf
    step_size = torch.where(taken, lrs.double() / (1 - beta1**counts).clamp_min(1e-30), 0.0).float()
    on = taken.unsqueeze(1)
    if not torch.compiler.is_compiling() and bool(taken.all()):  # eager, every row: in place, no selects
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        return (exp_avg / exp_avg_sq.sqrt().div_(bias2_sqrt).add_(eps)).mul_(step_size.unsqueeze(1))
    exp_avg.copy_(torch.where(on, torch.lerp(exp_avg, grad, 1 - beta1), exp_avg))
    exp_avg_sq.copy_(torch.where(on, torch.addcmul(exp_avg_sq * beta2, grad, grad, value=1 - beta2), exp_avg_sq))
    update = exp_avg / (exp_avg_sq.sqrt() / bias2_sqrt + eps) * step_size.unsqueeze(1)
    return torch.where(on, update, 0.0)  # a row that never stepped has 0 / 0 there
