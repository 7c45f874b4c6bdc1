"""Sampling error: how far the empirical action distribution of a buffer is from the policy.

SE = KL(pi_D || pi_theta), estimated on D as mean over (s, a) in D of
log pi_D(a|s) - log pi_theta(a|s), where pi_D is the maximum-likelihood policy fitted to D
(spec: props.md, "Sampling error"). pi_D starts as a copy of theta; for Gaussian policies the
hidden-layer weight matrices stay frozen (the features are theta's) and everything else -- hidden
biases, output layer, log-std -- is fitted, which keeps pi_D from memorizing individual samples.
Discrete policies fit every parameter. Log-std is clamped to [-3, 1] for both policies here.

The estimate must never perturb training: it draws only from its own seeded generator, works on a
deep copy of the policy, and leaves the caller's autograd mode alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from hybridpg.config import OnPolicyConfig
from hybridpg.networks import Policy, gaussian_log_prob

LOG_STD_MIN, LOG_STD_MAX = -3.0, 1.0


def _log_prob(policy: Policy, out: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    if policy.discrete:
        return policy.log_prob_from(out, actions)[0]
    return gaussian_log_prob(out, policy.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX), actions)


class _FrozenFirstLayer:
    """Forward pass of ``policy.net`` from a precomputed first-layer product ``obs @ W0^T``.

    With the hidden weights frozen, ``obs @ W0^T`` never changes during the fit, so it is computed
    once instead of every minibatch (mathematically the same network; matters for wide inputs).
    """

    def __init__(self, net: nn.Sequential, obs: torch.Tensor) -> None:
        first = net[0]
        assert isinstance(first, nn.Linear)
        self.first = first
        self.rest = net[1:]
        with torch.no_grad():
            self.z0 = F.linear(obs, first.weight)

    def __call__(self, idx: torch.Tensor | slice) -> torch.Tensor:
        out: torch.Tensor = self.rest(self.z0[idx] + self.first.bias)
        return out


def estimate_sampling_error(
    policy: Policy,
    obs: torch.Tensor,
    actions: torch.Tensor,
    epochs: int,
    seed: int,
    minibatch_size: int = 512,
    lr: float = 1e-3,
) -> float:
    """KL(pi_D || pi_theta) on the buffer ``(obs, actions)``; ``obs`` already normalized."""
    n = int(obs.shape[0])
    if n == 0:
        raise ValueError("sampling error needs at least one (s, a) pair")
    if epochs < 1 or minibatch_size < 1:
        raise ValueError("epochs and minibatch_size must be >= 1")
    generator = torch.Generator().manual_seed(int(seed))
    # inference_mode(False): callers may sit inside a no-grad/inference block (the rollout loop)
    with torch.inference_mode(False), torch.enable_grad():
        obs = obs.detach().clone().float()
        actions = actions.detach().clone()
        mle = copy.deepcopy(policy)
        mle.requires_grad_(True)
        linears = [m for m in mle.net if isinstance(m, nn.Linear)]
        forward: Callable[[torch.Tensor | slice], torch.Tensor]
        if not mle.discrete:
            for layer in linears[:-1]:
                layer.weight.requires_grad_(False)
            forward = _FrozenFirstLayer(mle.net, obs)
        else:
            mle.log_std.requires_grad_(False)  # unused by a Categorical policy
            forward = lambda idx: mle.net(obs[idx])  # noqa: E731

        params = [p for p in mle.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr, foreach=True)
        for _ in range(epochs):
            perm = torch.randperm(n, generator=generator)
            for start in range(0, n, minibatch_size):
                i = perm[start : start + minibatch_size]
                loss = -_log_prob(mle, forward(i), actions[i]).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
                optimizer.step()
        with torch.no_grad():
            logp_d = _log_prob(mle, forward(slice(None)), actions)
            logp_theta = _log_prob(policy, policy.net(obs), actions)
    return float((logp_d - logp_theta).mean())


#: ``se_freq = -1`` (auto) spreads about this many SE estimates over a run ...
SE_POINTS_PER_RUN = 30
#: ... but never more often than every this many updates: one estimate (100 epochs) costs about
#: 0.5-0.8 of an update iteration (collection + PPO), so this floor keeps it under ~10% of wall
#: time in short runs (measured: BENCHMARKS.md, "Sampling error")
SE_MIN_INTERVAL = 10


def se_interval(se_freq: int, total_updates: int) -> int:
    """Updates between two SE estimates: ``se_freq`` itself, 0 for off, or for -1 (auto)
    about ``SE_POINTS_PER_RUN`` points over ``total_updates``, at most one per ``SE_MIN_INTERVAL``."""
    if se_freq == -1:
        return max(SE_MIN_INTERVAL, total_updates // SE_POINTS_PER_RUN)
    return se_freq


def sampling_error_metric(
    policy: Policy,
    data: dict[str, torch.Tensor],
    cfg: OnPolicyConfig,
    updates: int,
    total_timesteps: int,
    seed: int,
) -> dict[str, float]:
    """``{"diagnostics/sampling_error": SE}`` of the prepared buffer when one is due, else ``{}``.

    Called just before the PPO update; the seed is derived from the run seed and the update index
    so the estimate is reproducible without touching any training RNG stream.
    """
    every = se_interval(cfg.se_freq, max(total_timesteps // cfg.n_steps, 1))
    if every <= 0 or updates % every:
        return {}
    se = estimate_sampling_error(policy, data["obs"], data["actions"], cfg.se_epochs, seed=seed * 1_000_003 + updates)
    return {"diagnostics/sampling_error": se}
