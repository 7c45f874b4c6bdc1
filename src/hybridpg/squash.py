"""The squashed-Gaussian sample of SAC's actor as one autograd node with a written-out backward.

From the actor network's output ``(mean, raw log-std)`` and standard-normal ``noise``:

    log_std = clamp(raw, LOG_STD_MIN, LOG_STD_MAX),  u = mean + exp(log_std) * noise,  a = tanh(u),
    log pi(a) = sum(-noise^2/2 - log_std - log(2 pi)/2 - log(1 - tanh(u)^2)) - log_scale_sum.

Recorded by autograd this is about a dozen elementwise nodes on small tensors, each costing more
in dispatch than in arithmetic; ``squashed_gaussian`` records one, whose backward is the chain
rule written out (``_SquashedGaussian.backward``). ``tests/test_sac.py`` compares its outputs and
every gradient with the same formula composed of plain torch ops, clamp boundaries included.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
LOG_2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)


def squash(
    u: torch.Tensor, noise: torch.Tensor, log_std: torch.Tensor, log_scale_sum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """tanh(u) and log pi with the change-of-variables correction.

    log pi = sum(-noise^2/2 - log_std - log(2 pi)/2 - log(1 - tanh(u)^2)) - log_scale_sum, where
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) is the exact, overflow-free form; the
    per-dimension constants are summed outside (fewer ops). ``log_scale_sum`` is log|d(env
    action)/d(tanh u)|: the affine map to the env's bounds shifts log pi by a constant.
    """
    per_dim = (u + nn.functional.softplus(-2.0 * u)).mul_(2.0).sub_(torch.addcmul(log_std, noise, noise, value=0.5))
    const = u.shape[-1] * (0.5 * LOG_2PI + 2.0 * LOG_2) + log_scale_sum
    return torch.tanh(u), per_dim.sum(-1) - const


def _sample(out: torch.Tensor, noise: torch.Tensor, log_scale_sum: float) -> tuple[torch.Tensor, ...]:
    """(a, log pi, std) from the network output (mean, raw log-std), without a graph."""
    mean, raw_log_std = out.chunk(2, dim=-1)
    log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    std = log_std.exp()
    a, logp = squash(torch.addcmul(mean, std, noise), noise, log_std, log_scale_sum)
    return a, logp, std


class _SquashedGaussian(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, out: torch.Tensor, noise: torch.Tensor, log_scale_sum: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        a, logp, std = _sample(out, noise, log_scale_sum)
        ctx.save_for_backward(out, noise, std, a)
        return a, logp

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_a: torch.Tensor, g_logp: torch.Tensor
    ) -> tuple[torch.Tensor | None, None, None]:
        """Through a = tanh(u): da/du = 1 - a^2 and d log pi/du = 2 tanh(u) (the log-det term);
        d log pi/d log_std = -1 (the Gaussian term, with the noise fixed); du/d mean = 1,
        du/d log_std = std * noise; the clamp passes gradient only inside [LOG_STD_MIN,
        LOG_STD_MAX], ends included (as ``torch.clamp``)."""
        out, noise, std, a = ctx.saved_tensors
        g_logp = g_logp.unsqueeze(-1)
        g_u = torch.addcmul(g_a, g_a * a, a, value=-1.0).addcmul_(a, g_logp, value=2.0)
        raw_log_std = out.chunk(2, dim=-1)[1]
        inside = (raw_log_std >= LOG_STD_MIN) & (raw_log_std <= LOG_STD_MAX)
        g_log_std = (g_u * std).mul_(noise).sub_(g_logp).mul_(inside)
        return torch.cat([g_u, g_log_std], dim=-1), None, None


def squashed_gaussian(
    out: torch.Tensor, noise: torch.Tensor, log_scale_sum: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reparameterized sample a = tanh(mean + exp(log_std) * noise) and its log-density, from
    ``out = (mean, raw log-std)`` on the last dimension; differentiable in ``out``."""
    if torch.is_grad_enabled() and out.requires_grad:
        a, logp = _SquashedGaussian.apply(out, noise, log_scale_sum)
        return a, logp
    a, logp, _ = _sample(out, noise, log_scale_sum)
    return a, logp
