"""The natural-gradient (TRPO-style) policy step that HNPG takes.

``npg_step`` solves F x = g by conjugate gradient on Fisher-vector products (double backward
through the mean KL), scales x to the KL radius and backtracks until the surrogate improves
within the trust region.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from hybridpg.networks import kl_from

if TYPE_CHECKING:
    from hybridpg.config import HNPGConfig
    from hybridpg.networks import Policy


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
