"""A lean Adam for small networks stepped thousands of times per second.

``torch.optim.Adam`` spends ~200 us of Python bookkeeping per ``step()`` on CPU (type and device
grouping, step-tensor conversions, profiler hooks) while the arithmetic for a 64-64 MLP takes
~30 us. PPO and PROPS take one step per minibatch, so that overhead was the largest single cost
of an update. ``LeanAdam`` performs the same update (Adam with bias correction, eps outside the
square root, no weight decay, no amsgrad) with a handful of foreach kernels, and keeps
``torch.optim.Adam``'s state layout, so ``state_dict``/``load_state_dict`` work unchanged.

``fused=True`` runs torch's own fused Adam kernel (the one ``torch.optim.Adam(fused=True)`` calls,
so the steps are bit-identical) without that class's per-step bookkeeping: 140 vs 290 us per step
for SAC's 256-256 twin critic on one core. For 100k-parameter networks the single fused pass over
parameters, gradients and moments beats six foreach passes (590 us).
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

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> None:  # type: ignore[override]
        assert closure is None, "LeanAdam does not take a closure"
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self.state[p] for p in params]
            for p, state in zip(params, states, strict=True):
                if not state:  # same keys and dtypes as torch.optim.Adam
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            grads = [p.grad for p in params]
            exp_avg = [s["exp_avg"] for s in states]
            exp_avg_sq = [s["exp_avg_sq"] for s in states]
            steps = [s["step"] for s in states]
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1.0)
            if self.fused:
                torch._fused_adam_(params, grads, exp_avg, exp_avg_sq, [], steps, amsgrad=False, lr=group["lr"],
                                   beta1=beta1, beta2=beta2, weight_decay=0.0, eps=group["eps"], maximize=False)
                continue
            step = float(steps[0])
            torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sq, beta2)
            torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
            bias1 = 1 - beta1**step
            bias2_sqrt = math.sqrt(1 - beta2**step)
            denom = torch._foreach_sqrt(exp_avg_sq)
            torch._foreach_div_(denom, bias2_sqrt)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, exp_avg, denom, value=-group["lr"] / bias1)

    def zero_grad(self, set_to_none: bool = True) -> None:
        # the base class wraps this in profiler bookkeeping that costs more than the loop itself
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
