"""A lean Adam for small networks stepped thousands of times per second.

``torch.optim.Adam`` spends more time on per-step Python bookkeeping on CPU (type and device
grouping, step-tensor conversions, profiler hooks) than on the arithmetic of a 64-64 MLP, and PPO
and PROPS take one step per minibatch. ``LeanAdam`` performs the same update (Adam with bias
correction, eps outside the square root, no weight decay, no amsgrad) with a handful of foreach
kernels, and keeps ``torch.optim.Adam``'s state layout, so ``state_dict``/``load_state_dict`` work
unchanged. ``fused=True`` runs torch's own fused Adam kernel (the one
``torch.optim.Adam(fused=True)`` calls, so the steps are bit-identical) without that class's
per-step bookkeeping; it suits large networks, where one fused pass beats six foreach passes.
Timings: BENCHMARKS.md (SAC).
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

    def step(self, closure: Callable[[], Any] | None = None) -> None:  # type: ignore[override]
        assert closure is None, "LeanAdam does not take a closure"
        self.step_without_hooks()

    @torch.no_grad()
    def step_without_hooks(self) -> None:
        """``step()`` minus the hook and profiler wrapper that ``torch.optim.Optimizer`` puts around
        every subclass's ``step``; for hot loops that register no optimizer hooks."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self.state[p] for p in params]
            if not all(states):  # same keys and dtypes as torch.optim.Adam
                # parameters that start together share one step tensor, so that counting a step is
                # one op, not one per parameter (state_dict() hands out a copy per parameter)
                step = torch.zeros((), dtype=torch.float32)
                for p, state in zip(params, states, strict=True):
                    if not state:
                        state["step"] = step
                        state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
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
            adam_step(params, grads, exp_avg, exp_avg_sq, float(steps[0]), group["lr"], (beta1, beta2), group["eps"])

    def state_dict(self) -> dict[str, Any]:
        # one step tensor per parameter, as torch.optim.Adam keeps them: torch's Adam increments
        # each in place, so a shared one loaded there would count a step once per parameter
        out = super().state_dict()
        out["state"] = {k: {**v, "step": v["step"].clone()} for k, v in out["state"].items()}
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:  # share the step again where a group's counts agree
            states = [self.state[p] for p in group["params"] if self.state.get(p)]
            if states and len({float(s["step"]) for s in states}) == 1:
                for s in states:
                    s["step"] = states[0]["step"]

    def zero_grad(self, set_to_none: bool = True) -> None:
        # the base class wraps this in profiler bookkeeping that costs more than the loop itself
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


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
