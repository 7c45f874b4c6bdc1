"""Optimizer steps: a lean Adam for small networks stepped thousands of times per second, and the
natural-gradient (TRPO-style) step that HNPG takes.

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

``npg_step`` solves F x = g by conjugate gradient on Fisher-vector products (double backward
through the mean KL), scales x to the KL radius and backtracks until the surrogate improves
within the trust region.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from hybridpg.networks import kl_from

if TYPE_CHECKING:
    from hybridpg.config import HNPGConfig
    from hybridpg.networks import Policy


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
            step_count = float(steps[0])
            torch._foreach_lerp_(exp_avg, grads, 1 - beta1)
            torch._foreach_mul_(exp_avg_sq, beta2)
            torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=1 - beta2)
            bias1 = 1 - beta1**step_count
            bias2_sqrt = math.sqrt(1 - beta2**step_count)
            denom = torch._foreach_sqrt(exp_avg_sq)
            torch._foreach_div_(denom, bias2_sqrt)
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(params, exp_avg, denom, value=-group["lr"] / bias1)

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


def conjugate_gradient(
    avp: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int, tol: float = 1e-10
) -> torch.Tensor:
    """Approximately solve A x = b for symmetric positive definite A given only x -> A x."""
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = r.dot(r)
    for _ in range(iters):
        if rr < tol:
            break
        ap = avp(p)
        alpha = rr / p.dot(ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def npg_step(
    policy: Policy, obs: torch.Tensor, actions: torch.Tensor, adv: torch.Tensor, cfg: HNPGConfig
) -> dict[str, float]:
    """One TRPO-style step: CG on Fisher-vector products, scaled to max_kl, backtracking line search."""
    params = [p for p in policy.parameters() if p.requires_grad]
    with torch.no_grad():
        old_out = policy.net(obs)
        old_logp, _ = policy.log_prob_from(old_out, actions)
    old_log_std = policy.log_std.detach().clone()
    # kl_from averages Gaussian KL over action dims; TRPO's constraint is on the full (summed) KL
    kl_scale = 1.0 if policy.discrete else float(policy.action_dim)

    def surrogate() -> torch.Tensor:
        logp, _ = policy.log_prob(obs, actions)
        return (torch.exp(logp - old_logp) * adv).mean()

    def mean_kl() -> torch.Tensor:
        return (
            kl_from(policy.discrete, old_out, old_log_std, policy.net(obs), policy.log_std).mean() * kl_scale
        )

    loss = surrogate()
    g = parameters_to_vector(torch.autograd.grad(loss, params))
    if not torch.isfinite(g).all() or g.norm() == 0:
        return {"losses/kl": 0.0, "losses/npg_improvement": 0.0, "losses/line_search_frac": 0.0}

    def fvp(v: torch.Tensor) -> torch.Tensor:
        grads = parameters_to_vector(torch.autograd.grad(mean_kl(), params, create_graph=True))
        hv = parameters_to_vector(torch.autograd.grad(grads.dot(v), params))
        return hv + cfg.cg_damping * v

    x = conjugate_gradient(fvp, g, cfg.cg_iters)
    shs = x.dot(fvp(x)).clamp_min(1e-12)
    step = torch.sqrt(2 * cfg.max_kl / shs) * x
    expected = g.dot(step).item()
    old = parameters_to_vector(params).detach()
    for k in range(cfg.line_search_steps):
        frac = 0.5**k
        vector_to_parameters(old + frac * step, params)
        with torch.no_grad():
            improve, kl = (surrogate() - loss).item(), mean_kl().item()
        if (
            math.isfinite(kl)
            and kl <= 1.5 * cfg.max_kl
            and improve > 0
            and improve > cfg.accept_ratio * frac * expected
        ):
            return {"losses/kl": kl, "losses/npg_improvement": improve, "losses/line_search_frac": frac}
    vector_to_parameters(old, params)
    return {"losses/kl": 0.0, "losses/npg_improvement": 0.0, "losses/line_search_frac": 0.0}
