"""The PPO update and PROPS's behavior update for N seeds at once (one setting, N seeds side by side).

The same math as ``OnPolicyAgent._ppo_update`` and ``props.props_update`` (the same minibatch loss
functions, ``ppo_minibatch_loss`` and ``props_minibatch_loss``), with a leading seed dimension: each
seed shuffles with its own generator (drawing exactly what its single run draws), its minibatches
go through the stacked networks together, and its KL early stop is a mask. A seed that stopped
draws no more permutations and takes no further step: its loss is masked out of the backward pass
and ``StackedAdam`` leaves its moments and step count alone. Gradients are clipped per seed. Per
seed the result equals a single run's update up to float summation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from hybridpg.algorithms.ppo_loss import MinibatchLoss, explained_variance, ppo_minibatch_loss
from hybridpg.algorithms.props import PROPSMinibatchLoss, props_minibatch_loss
from hybridpg.config import OnPolicyConfig, PROPSConfig
from hybridpg.gradient_step import StackedGradientStep
from hybridpg.stacked import StackedAdam, StackedMLP, StackedPolicy


def _shuffle(packed: torch.Tensor, active: torch.Tensor, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """Each active seed's rows in its own random order (stopped seeds draw nothing), as ``[N, rows, width]``.

    In memory the seeds' k-th rows sit side by side, so a minibatch sliced from the result has the same
    strides whatever the buffer's length: a compiled step would otherwise compile a new graph each
    time a filling buffer grows."""
    seeds, n, width = packed.shape
    perms = [torch.randperm(n, generator=g) if on else torch.arange(n)
             for g, on in zip(generators, active.tolist(), strict=True)]
    rows = (torch.stack(perms, dim=1) + torch.arange(seeds) * n).view(-1)  # row k of every seed, then row k + 1
    return packed.reshape(seeds * n, width).index_select(0, rows).view(n, seeds, width).transpose(0, 1)


def ppo_update_seeds(
    policy: StackedPolicy,
    value: StackedMLP,
    adam: StackedAdam,
    datas: Sequence[dict[str, torch.Tensor]],
    cfg: OnPolicyConfig,
    generators: Sequence[torch.Generator],
) -> list[dict[str, float]]:
    """PPO's clipped update on every seed's prepared buffer (``OnPolicyAgent.begin_update``)."""
    seeds, n = len(datas), datas[0]["obs"].shape[0]
    mb_size = max(n // cfg.n_minibatches, 1)
    act_shape = datas[0]["actions"].shape[1:]
    columns = [[d["obs"], d["actions"].reshape(n, -1), *(d[k].view(n, 1) for k in
                ("logp", "advantages", "returns", "values"))] for d in datas]
    widths = [c.shape[1] for c in columns[0]]
    packed = torch.stack([torch.cat(c, dim=1) for c in columns])
    active = torch.ones(seeds, dtype=torch.bool)
    stopped = torch.zeros(seeds, dtype=torch.bool)
    epochs_run, clip_count, clip_total = torch.zeros(seeds), torch.zeros(seeds), torch.zeros(seeds)
    approx_kl = torch.zeros(seeds)
    stats = torch.zeros(3, seeds)  # policy loss, value loss, entropy of each seed's last step
    stepped = torch.zeros(seeds, dtype=torch.bool)
    # compiled, only the minibatch size of a full buffer (as a single run's update does)
    full_size = cfg.full_minibatch_size
    layout = (policy.discrete, policy.action_dim, len(policy.parameters))
    step = StackedGradientStep(_ppo_loss, layout, [*policy.parameters, *value.parameters], adam, cfg.max_grad_norm,
                               compile=cfg.compile)
    for _ in range(cfg.n_epochs):
        shuffled = _shuffle(packed, active, generators)
        epochs_run += active
        for start in range(0, n - mb_size + 1, mb_size):
            obs, actions, old_logp, adv, ret, old_v = shuffled[:, start : start + mb_size].split(widths, dim=2)
            # a seed past target_kl takes no step, and that ends all of its epochs
            mb, taken = step(active, obs, actions.reshape(seeds, mb_size, *act_shape), old_logp.squeeze(-1),
                             adv.squeeze(-1), ret.squeeze(-1), old_v.squeeze(-1), cfg, rows=full_size,
                             stop_above=cfg.target_kl)
            with torch.no_grad():
                approx_kl = torch.where(active, mb.approx_kl, approx_kl)
                clip_count += torch.where(active, mb.clipped, 0)
                clip_total += active * mb_size
                stopped, active = stopped | (active & ~taken), taken
            if not bool(active.any()):
                break
            stats = torch.where(active, torch.stack([mb.policy_loss, mb.value_loss, mb.entropy]).detach(), stats)
            stepped |= active
        if not bool(active.any()):
            break
    lrs = adam.learning_rates()
    out = []
    for k in range(seeds):
        metrics = {
            "losses/approx_kl": float(approx_kl[k]),
            "losses/clipfrac": float(clip_count[k] / clip_total[k]) if clip_total[k] else 0.0,
            "losses/explained_variance": explained_variance(datas[k]),
            "losses/epochs_run": float(epochs_run[k]),
            "losses/early_stop": float(stopped[k]),
            "charts/learning_rate": float(lrs[k]),
        }
        if bool(stepped[k]):
            names = ("losses/policy_loss", "losses/value_loss", "losses/entropy")
            metrics.update({name: float(x) for name, x in zip(names, stats[:, k], strict=True)})
        out.append(metrics)
    return out


def props_update_seeds(
    behavior: StackedPolicy,
    reference: StackedPolicy,
    adam: StackedAdam,
    inputs: Sequence[tuple[torch.Tensor, torch.Tensor]],
    cfg: PROPSConfig,
    generators: Sequence[torch.Generator],
) -> list[dict[str, float]]:
    """PROPS's behavior update (``props.props_update``) of every seed's phi on its buffer rows."""
    seeds, n = len(inputs), inputs[0][0].shape[0]
    if n == 0:
        return [{} for _ in inputs]
    obs = torch.stack([o for o, _ in inputs])
    actions = torch.stack([a for _, a in inputs])
    act_shape = actions.shape[2:]
    with torch.no_grad():  # theta's side is fixed for the whole update: compute it once
        ref_out = reference.net(obs)
        ref_logp, _ = reference.log_prob_from(ref_out, actions)
        ref_log_std = reference.log_std.detach()
    mb_size = max((cfg.buffer_batches * cfg.n_steps - cfg.behavior_steps) // cfg.props_minibatches, 1)
    columns = [obs, actions.reshape(seeds, n, -1), ref_logp.unsqueeze(-1), ref_out]
    widths = [c.shape[2] for c in columns]
    packed = torch.cat(columns, dim=2)
    active = torch.ones(seeds, dtype=torch.bool)
    stopped = torch.zeros(seeds, dtype=torch.bool)
    epochs_run, steps = torch.zeros(seeds), torch.zeros(seeds)
    kl_seen, clipfrac, last_loss = torch.zeros(seeds), torch.zeros(seeds), torch.zeros(seeds)
    step = StackedGradientStep(_props_loss, (behavior.discrete, behavior.action_dim), behavior.parameters, adam, 0.5,
                               compile=cfg.compile, stop_on="kl")
    for _ in range(cfg.props_epochs):
        shuffled = _shuffle(packed, active, generators)
        epochs_run += active
        for start in range(0, n, mb_size):  # the last minibatch may be partial, as the authors ran it
            mb_obs, mb_act, mb_ref_logp, mb_ref_out = shuffled[:, start : start + mb_size].split(widths, dim=2)
            (loss, kl, ratio), taken = step(active, mb_obs, mb_act.reshape(seeds, mb_obs.shape[1], *act_shape),
                                            mb_ref_logp.squeeze(-1), mb_ref_out, ref_log_std, cfg, rows=mb_size,
                                            stop_above=cfg.props_target_kl)
            with torch.no_grad():
                kl_seen = torch.where(active, kl, kl_seen)
                over = active & ~taken
                if bool(over.any()):  # the clip fraction of each seed's last minibatch: here, where it stops
                    clipfrac = torch.where(over, _clip_fraction(ratio, cfg.props_clip), clipfrac)
                stopped, active = stopped | over, taken
            if not bool(active.any()):
                break
            steps += active
            last_loss = torch.where(active, loss.detach(), last_loss)
        if not bool(active.any()):
            break
    with torch.no_grad():  # the seeds that ran to the end: their last minibatch is the final one
        clipfrac = torch.where(active, _clip_fraction(ratio, cfg.props_clip), clipfrac)
    return [
        {
            "props/behavior_kl": float(kl_seen[k]),
            "props/clipfrac": float(clipfrac[k]),
            "props/loss": float(last_loss[k]),
            "props/epochs_run": float(epochs_run[k]),
            "props/grad_steps": float(steps[k]),
            "props/early_stop": float(stopped[k]),
        }
        for k in range(seeds)
    ]


def _ppo_loss(tensors: Sequence[torch.Tensor], layout: tuple[bool, int, int], *batch: Any) -> MinibatchLoss:
    """``ppo_minibatch_loss`` of the seeds' stacked networks, given as their tensors (policy's, then value's)."""
    discrete, action_dim, split = layout
    policy, value = StackedPolicy(tensors[:split], discrete, action_dim), StackedMLP(tensors[split:])
    return ppo_minibatch_loss(policy, lambda obs: value(obs).squeeze(-1), *batch)


def _props_loss(tensors: Sequence[torch.Tensor], layout: tuple[bool, int], *batch: Any) -> PROPSMinibatchLoss:
    """``props_minibatch_loss`` of the seeds' stacked behavior policies, given as their tensors."""
    return props_minibatch_loss(StackedPolicy(tensors, *layout), *batch)


def _clip_fraction(ratio: torch.Tensor, clip: float) -> torch.Tensor:
    return ((ratio - 1).abs() > clip).float().mean(-1)
