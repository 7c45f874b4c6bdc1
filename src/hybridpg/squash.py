"""SAC's actor sample, network and squashed Gaussian together, as one autograd node.

From the actor network's output ``(mean, raw log-std)`` on ``obs`` and standard-normal ``noise``:

    log_std = clamp(raw, LOG_STD_MIN, LOG_STD_MAX),  u = mean + exp(log_std) * noise,  a = tanh(u),
    log pi(a) = sum(-noise^2/2 - log_std - log(2 pi)/2 - log(1 - tanh(u)^2)) - log_scale_sum.

Recorded by autograd, the squash alone is about a dozen elementwise nodes on small tensors, each
costing more in dispatch than in arithmetic, and the network one more. ``squashed_gaussian_sample``
records one node for all of it; its backward is the chain rule written out (``_squash_backward``,
then ``EnsembleMLP``'s backward). With ``split`` it also serves SAC's one actor pass for two
batches: the first ``split`` rows' samples come without gradient, and the backward runs on the
other rows only. ``tests/test_sac.py`` compares outputs and every gradient with the same formula
composed of plain torch ops, clamp ends included.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from hybridpg.ensemble_mlp import EnsembleMLP
from hybridpg.ensemble_mlp import _backward as mlp_backward
from hybridpg.ensemble_mlp import _forward as mlp_forward

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
LOG_2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)

Sample = tuple[torch.Tensor, torch.Tensor]


def squash(u: torch.Tensor, noise: torch.Tensor, log_std: torch.Tensor, log_scale_sum: float) -> Sample:
    """tanh(u) and log pi with the change-of-variables correction.

    log pi = sum(-noise^2/2 - log_std - log(2 pi)/2 - log(1 - tanh(u)^2)) - log_scale_sum, where
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) is the exact, overflow-free form; the
    per-dimension constants are summed outside (fewer ops). ``log_scale_sum`` is log|d(env
    action)/d(tanh u)|: the affine map to the env's bounds shifts log pi by a constant.
    """
    per_dim = (u + nn.functional.softplus(-2.0 * u)).mul_(2.0).sub_(torch.addcmul(log_std, noise, noise, value=0.5))
    const = u.shape[-1] * (0.5 * LOG_2PI + 2.0 * LOG_2) + log_scale_sum
    return torch.tanh(u), per_dim.sum(-1) - const


def _squash_forward(out: torch.Tensor, noise: torch.Tensor, log_scale_sum: float) -> tuple[torch.Tensor, ...]:
    """(a, log pi, std, raw log-std) from the network output ``out = (mean, raw log-std)``, without
    a graph."""
    mean, raw_log_std = out.chunk(2, dim=-1)
    log_std = raw_log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
    std = log_std.exp()
    a, logp = squash(torch.addcmul(mean, std, noise), noise, log_std, log_scale_sum)
    return a, logp, std, raw_log_std


def _squash_backward(
    raw_log_std: torch.Tensor, noise: torch.Tensor, std: torch.Tensor, a: torch.Tensor, g_a: torch.Tensor,
    g_logp: torch.Tensor,
) -> torch.Tensor:
    """d/d(mean, raw log-std) from dL/da and dL/d(log pi).

    Through a = tanh(u): da/du = 1 - a^2 and d log pi/du = 2 tanh(u) (the log-det term);
    d log pi/d log_std = -1 (the Gaussian term, with the noise fixed); du/d mean = 1,
    du/d log_std = std * noise; the clamp passes gradient only inside [LOG_STD_MIN, LOG_STD_MAX],
    ends included (as ``torch.clamp``).
    """
    g_logp = g_logp.unsqueeze(-1)
    g_u = torch.addcmul(g_a, g_a * a, a, value=-1.0).addcmul_(a, g_logp, value=2.0)
    inside = (raw_log_std >= LOG_STD_MIN) & (raw_log_std <= LOG_STD_MAX)
    g_log_std = (g_u * std).mul_(noise).sub_(g_logp).mul_(inside)
    return torch.cat([g_u, g_log_std], dim=-1)


class _SquashedGaussianSample(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, noise: torch.Tensor, split: int, log_scale_sum: float, dtype: torch.dtype,
        w_in: torch.Tensor, b_in: torch.Tensor, w_out: torch.Tensor, b_out: torch.Tensor, *hidden: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        out, acts = mlp_forward(x, dtype, w_in, b_in, w_out, b_out, hidden)
        a, logp, std, raw_log_std = _squash_forward(out[0], noise, log_scale_sum)
        ctx.dtype, ctx.split, ctx.n_hidden = dtype, split, len(hidden)
        if split:  # only the rows from split on are back-propagated
            ctx.save_for_backward(x[split:], w_in, w_out, *hidden[0::2], *(h[:, split:] for h in acts),
                                  raw_log_std[split:], noise[split:], std[split:], a[split:])
            fixed = a[:split], logp[:split]
            ctx.mark_non_differentiable(*fixed)
            ctx.set_materialize_grads(False)
            return (*fixed, a[split:], logp[split:])
        ctx.save_for_backward(x, w_in, w_out, *hidden[0::2], *acts, raw_log_std, noise, std, a)
        return a, logp

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        g_a, g_logp = grads[-2:]
        need = ctx.needs_input_grad
        if g_a is None and g_logp is None:
            return (None,) * len(need)
        x, w_in, w_out, *rest, raw_log_std, noise, std, a = ctx.saved_tensors
        n_layers = ctx.n_hidden // 2
        g_a = torch.zeros_like(a) if g_a is None else g_a
        g_logp = a.new_zeros(a.shape[:-1]) if g_logp is None else g_logp
        g_out = _squash_backward(raw_log_std, noise, std, a, g_a, g_logp).unsqueeze(0)
        (g_x,), g_params = mlp_backward(x, w_in, w_out, rest[:n_layers], rest[n_layers:], g_out, ctx.dtype,
                                        any(need[5:]), [(0, x.shape[1]) if need[0] else None])
        if g_x is not None and ctx.split:  # the rows before split get none
            g_x = torch.cat([g_x.new_zeros(ctx.split, g_x.shape[1]), g_x])
        return (g_x, None, None, None, None, *g_params)


def _sample(
    net: EnsembleMLP, x: torch.Tensor, noise: torch.Tensor, log_scale_sum: float, split: int
) -> tuple[torch.Tensor, ...]:
    params = net._params()
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        out: tuple[torch.Tensor, ...] = _SquashedGaussianSample.apply(
            x, noise, split, log_scale_sum, net.matmul_dtype, *params)
        return out
    mlp_out = mlp_forward(x, net.matmul_dtype, params[0], params[1], params[2], params[3], tuple(params[4:]))[0]
    a, logp, _, _ = _squash_forward(mlp_out[0], noise, log_scale_sum)
    return (a[:split], logp[:split], a[split:], logp[split:]) if split else (a, logp)


def squashed_gaussian_sample(net: EnsembleMLP, obs: torch.Tensor, noise: torch.Tensor, log_scale_sum: float) -> Sample:
    """The reparameterized sample a = tanh(mean + exp(log_std) * noise) and its log-density, where
    ``(mean, raw log-std) = net(obs)`` (one member); differentiable in ``net``'s weights and ``obs``."""
    a, logp = _sample(net, obs, noise, log_scale_sum, 0)
    return a, logp


def squashed_gaussian_samples(
    net: EnsembleMLP, obs_fixed: torch.Tensor, obs: torch.Tensor, noise: torch.Tensor, log_scale_sum: float
) -> tuple[Sample, Sample]:
    """``squashed_gaussian_sample`` on two batches from one network pass, with ``noise`` for both
    (``obs_fixed``'s rows first): the first batch's sample without gradient, the second's with it."""
    k = len(obs_fixed)
    a_fixed, logp_fixed, a, logp = _sample(net, torch.cat([obs_fixed, obs]), noise, log_scale_sum, k)
    return (a_fixed, logp_fixed), (a, logp)
