"""Behavior-policy updates: PROPS and ROS, as plain functions of the policies and the buffer.

PROPS minimizes mean(max(r, clip(r, 1-eps, 1+eps))) + lambda * KL(pi_phi || pi_theta), with
r = pi_phi(a|s) / pi_theta(a|s) over the buffer's (s, a). Pushing r down on actions already in the
buffer moves probability to the actions the buffer under-represents; the clip stops r from going
below 1 - eps, and the update stops once the sample KL(theta || phi) exceeds delta.

ROS acts with phi = theta - alpha * g_bar, g_bar the mean over the buffer of grad log pi_theta(a|s):
before every env step phi is reset to theta and moved by one plain gradient step that LOWERS the
buffer's log-probs (the ROS paper's direction and form; the PROPS authors' 2023 code raised them,
with Adam).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from hybridpg.config import PROPSConfig
from hybridpg.gradient_step import GradientStep
from hybridpg.networks import Policy, kl_from
from hybridpg.optim import LeanAdam
from hybridpg.stacked import StackedPolicy


def props_loss(ratio: torch.Tensor, kl_to_theta: torch.Tensor, cfg: PROPSConfig) -> torch.Tensor:
    """mean(max(r, clip(r, 1-eps, 1+eps))) + lambda * mean KL(phi || theta), over the last dimension."""
    clipped = ratio.clamp(1 - cfg.props_clip, 1 + cfg.props_clip)
    return torch.max(ratio, clipped).mean(-1) + cfg.props_lambda * kl_to_theta.mean(-1)


class PROPSMinibatchLoss(NamedTuple):
    loss: torch.Tensor  # what the step minimizes
    kl: torch.Tensor  # (r - 1) - log r, averaged: the sample KL(pi_theta || pi_phi) the early stop reads
    ratio: torch.Tensor  # r per row


def props_minibatch_loss(behavior: Policy | StackedPolicy, obs: torch.Tensor, actions: torch.Tensor,
                         ref_logp: torch.Tensor, ref_out: torch.Tensor, ref_log_std: torch.Tensor,
                         cfg: PROPSConfig) -> PROPSMinibatchLoss:
    """PROPS's loss on one minibatch, the sample KL(pi_theta || pi_phi) its early stop reads, and the ratios.

    Rows are the last dimension of the per-sample tensors; a leading one, if any, holds seeds trained
    side by side (``StackedPolicy``, log-stds ``[N, A]``)."""
    out = behavior.net(obs)
    logp, _ = behavior.log_prob_from(out, actions)
    log_ratio = logp - ref_logp
    ratio = log_ratio.exp()
    with torch.no_grad():
        kl = ((ratio - 1) - log_ratio).mean(-1)
    # log-stds gain a row dimension to broadcast against the rows of ``out``
    kl_to_theta = kl_from(behavior.discrete, out, behavior.log_std.unsqueeze(-2), ref_out, ref_log_std.unsqueeze(-2))
    return PROPSMinibatchLoss(props_loss(ratio, kl_to_theta, cfg), kl, ratio)


def props_update(
    behavior: Policy,
    reference: Policy,
    optimizer: LeanAdam,
    obs: torch.Tensor,
    actions: torch.Tensor,
    cfg: PROPSConfig,
    generator: torch.Generator,
) -> dict[str, float]:
    """Adapt ``behavior`` (phi, already a copy of theta) in place; returns diagnostics."""
    n = obs.shape[0]
    if n == 0:
        return {}
    with torch.no_grad():  # theta's side is fixed for the whole update: compute it once
        ref_out = reference.net(obs)
        ref_logp, _ = reference.log_prob_from(ref_out, actions)
        ref_log_std = reference.log_std.detach()
    # the authors' fixed size (b*n - m) / minibatches: an early, smaller buffer takes fewer steps
    mb_size = max((cfg.buffer_batches * cfg.n_steps - cfg.behavior_steps) // cfg.props_minibatches, 1)
    step = GradientStep(props_minibatch_loss, (behavior,), optimizer, 0.5, compile=cfg.compile, stop_on="kl")
    epochs_run, steps, stopped = 0, 0, False
    kl = torch.zeros(())
    ratio = torch.ones(1)
    loss = torch.zeros(())
    # one gather per epoch of every per-sample column, then cheap slices per minibatch
    act_shape = actions.shape[1:]
    columns = [obs, actions.reshape(n, -1), ref_logp.view(n, 1), ref_out]
    widths = [c.shape[1] for c in columns]
    packed = torch.cat(columns, dim=1)
    for _ in range(cfg.props_epochs):
        shuffled = packed[torch.randperm(n, generator=generator)]
        epochs_run += 1
        for start in range(0, n, mb_size):  # the last minibatch may be partial, as the authors ran it
            mb_obs, mb_act, mb_ref_logp, mb_ref_out = shuffled[start : start + mb_size].split(widths, dim=1)
            (loss, kl, ratio), taken = step(mb_obs, mb_act.reshape(mb_obs.shape[0], *act_shape),
                                            mb_ref_logp.squeeze(1), mb_ref_out, ref_log_std, cfg,
                                            rows=mb_size, stop_above=cfg.props_target_kl)
            if not taken:  # the sample KL(theta || phi) passed delta: the whole update stops
                stopped = True
                break
            steps += 1
        if stopped:
            break
    return {
        "props/behavior_kl": float(kl),
        # of the last minibatch seen: a diagnostic, so computed once here rather than on every minibatch
        "props/clipfrac": float(((ratio.detach() - 1).abs() > cfg.props_clip).float().mean()),
        "props/loss": float(loss.detach()),
        "props/epochs_run": float(epochs_run),
        "props/grad_steps": float(steps),
        "props/early_stop": float(stopped),
    }


def ros_update(
    behavior: Policy,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    actions: torch.Tensor,
    theta: Policy | None = None,
) -> float:
    """The ROS step: phi = theta - lr * g_bar, g_bar = grad of the mean log pi(a|s) over the buffer.

    With ``theta`` given, phi is first reset to it, so the gradient is taken at theta and steps
    never accumulate (the ROS paper's form; the agent passes it before every env step). Without it
    the step starts from phi as it is. ``optimizer`` must be plain SGD over phi's parameters (no
    momentum, no weight decay), so the step is exactly -lr * g_bar. Returns the mean log-prob
    before the step.
    """
    _require_plain_sgd(optimizer)
    if theta is not None:
        with torch.no_grad():
            for p, q in zip(behavior.parameters(), theta.parameters(), strict=True):
                p.copy_(q)
    logp, _ = behavior.log_prob(obs, actions)
    loss = logp.mean()  # minimized: the step lowers log pi of the actions already in the buffer
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _require_plain_sgd(optimizer: torch.optim.Optimizer) -> None:
    """Refuse an optimizer whose step is not exactly -lr * grad (momentum, decay, Adam, ...)."""
    plain = isinstance(optimizer, torch.optim.SGD) and all(
        g["momentum"] == 0 and g["weight_decay"] == 0 and not g["nesterov"] and not g.get("maximize", False)
        for g in optimizer.param_groups
    )
    if not plain:
        raise ValueError("ROS takes plain gradient steps: use torch.optim.SGD without momentum or weight decay")
