"""PPO's losses as plain functions of tensors, shared by the single-run update (``onpolicy.py``) and
the update of seeds trained side by side (``seed_batch.py``), where a leading dimension holds seeds."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from hybridpg.config import OnPolicyConfig
from hybridpg.networks import Policy
from hybridpg.stacked import StackedPolicy


def ppo_losses(ratio: torch.Tensor, entropy: torch.Tensor, v: torch.Tensor, adv: torch.Tensor, ret: torch.Tensor,
               old_v: torch.Tensor, cfg: OnPolicyConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped policy loss, (clipped) value loss and mean entropy of one minibatch, averaged over
    the last dimension (a leading dimension, if any, holds seeds trained side by side)."""
    if adv.shape[-1] > 1:
        adv = (adv - adv.mean(-1, keepdim=True)) / (adv.std(-1, keepdim=True) + 1e-8)
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean(-1)
    if cfg.clip_vloss:
        v_clipped = old_v + (v - old_v).clamp(-cfg.clip_coef, cfg.clip_coef)
        v_loss = 0.5 * torch.max((v - ret).pow(2), (v_clipped - ret).pow(2)).mean(-1)
    else:
        v_loss = 0.5 * (v - ret).pow(2).mean(-1)
    return pg_loss, v_loss, entropy.mean(-1)


class MinibatchLoss(NamedTuple):
    loss: torch.Tensor  # what the step minimizes
    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy: torch.Tensor
    approx_kl: torch.Tensor  # (r - 1) - log r, averaged: the sample KL(old || new) the early stop reads
    clipped: torch.Tensor  # how many ratios lie outside the clip range


def ppo_minibatch_loss(policy: Policy | StackedPolicy, value: Callable[[torch.Tensor], torch.Tensor],
                       obs: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                       ret: torch.Tensor, old_v: torch.Tensor, cfg: OnPolicyConfig) -> MinibatchLoss:
    """One minibatch of PPO's update: losses on both networks and the early-stop statistics, each
    reduced over the rows (the last dimension; a leading one, if any, holds seeds). ``value`` maps
    observations to one value per row."""
    new_logp, entropy = policy.log_prob(obs, actions)
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean(-1)
        clipped = ((ratio - 1.0).abs() > cfg.clip_coef).sum(-1)
    pg_loss, v_loss, ent = ppo_losses(ratio, entropy, value(obs), adv, ret, old_v, cfg)
    loss = pg_loss - cfg.ent_coef * ent + cfg.vf_coef * v_loss
    return MinibatchLoss(loss, pg_loss, v_loss, ent, approx_kl, clipped)


def explained_variance(data: dict[str, torch.Tensor]) -> float:
    values, returns = data["values"].numpy(), data["returns"].numpy()
    var_y = float(np.var(returns))
    return float("nan") if var_y == 0 else 1 - float(np.var(returns - values)) / var_y
