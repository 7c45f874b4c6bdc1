"""Networks and the policy math on them (log-probs, entropy, KL), as plain functions of tensors.

Distributions are written out instead of going through ``torch.distributions``: the formulas are
three lines each, and skipping the distribution objects removes argument validation and object
construction from every minibatch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hybridpg.errors import EnvError
from hybridpg.optim import LeanAdam

LOG_2PI = math.log(2 * math.pi)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``torch.tanh``; inside a compiled graph written as 1 - 2 / (exp(2x) + 1) (within 3e-7 of it in
    float32), because inductor's vectorized tanh on CPU costs several times its exp (BENCHMARKS.md,
    minibatch step cost). The clamp keeps exp finite in float32 and float64 (not float16), so the
    gradient is never inf/inf; past it tanh's slope is below 1e-16."""
    if torch.compiler.is_compiling():
        return 1 - 2 / (torch.exp((2 * x).clamp_max(40.0)) + 1)
    return torch.tanh(x)


class MLP(nn.Sequential):
    """An ``nn.Sequential`` of Linear and activation layers with a leaner forward.

    Calling ``F.linear``/``tanh`` directly skips ``Module.__call__``'s hooks for every layer.
    Layout, parameter names and indexing are those of ``nn.Sequential``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, nn.Linear):
                x = F.linear(x, layer.weight, layer.bias)
            elif isinstance(layer, nn.Tanh):
                x = tanh(x)
            elif isinstance(layer, nn.ReLU):
                x = torch.relu(x)
            else:
                x = layer(x)
        return x


def mlp(sizes: list[int], activation: type[nn.Module], output_gain: float) -> nn.Sequential:
    """Tanh/ReLU MLP with orthogonal init (gain sqrt 2 hidden, ``output_gain`` last), zero biases."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        linear = nn.Linear(sizes[i], sizes[i + 1])
        last = i == len(sizes) - 2
        nn.init.orthogonal_(linear.weight, output_gain if last else math.sqrt(2))
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(activation())
    return MLP(*layers)


class Policy(nn.Module):
    """Gaussian (state-independent log-std) or Categorical policy over a flat observation."""

    def __init__(self, obs_dim: int, action_space: gym.Space, hidden: tuple[int, ...]) -> None:
        super().__init__()
        if isinstance(action_space, gym.spaces.Discrete):
            self.discrete = True
            self.action_dim = int(action_space.n)
            out = self.action_dim
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            self.discrete = False
            self.action_dim = int(action_space.shape[0])
            out = self.action_dim
        else:
            raise EnvError(f"unsupported action space {action_space}: use Discrete or a 1-D Box")
        self.net = mlp([obs_dim, *hidden, out], nn.Tanh, output_gain=0.01)
        self.log_std = nn.Parameter(torch.zeros(self.action_dim), requires_grad=not self.discrete)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean (continuous) or logits (discrete)."""
        out: torch.Tensor = self.net(obs)
        return out

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-prob of ``actions`` and the per-sample entropy."""
        return self.log_prob_from(self.net(obs), actions)

    def log_prob_from(self, out: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Like ``log_prob`` but from network outputs already computed (saves a forward pass)."""
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=-1)
            logp = logp_all.gather(-1, actions.long().view(-1, 1)).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp, entropy
        return gaussian_log_prob(out, self.log_std, actions), gaussian_entropy(self.log_std).expand(out.shape[0])

    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Sample with externally drawn noise: N(0,1) for Gaussian, U(0,1) for Categorical (no grad)."""
        if torch.is_grad_enabled():  # entering no_grad costs more than the forward of a tiny MLP
            with torch.no_grad():
                return self._sample(obs, noise)
        return self._sample(obs, noise)

    def _sample(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out = self.net(obs)
        if self.discrete:
            cdf = torch.softmax(out, dim=-1).cumsum(-1)
            # inverse-CDF sampling; clamp guards against cdf[-1] < 1 by rounding
            return torch.searchsorted(cdf, noise.view(-1, 1)).clamp_max(self.action_dim - 1).squeeze(-1)
        return out + self.log_std.exp() * noise

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.net(obs)
            return out.argmax(-1) if self.discrete else out

    def act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """The mode, or a sample with fresh noise from the global RNG (acting, not training)."""
        if deterministic:
            return self.mode(obs)
        noise = torch.rand(obs.shape[0]) if self.discrete else torch.randn(obs.shape[0], self.action_dim)
        return self.sample(obs, noise)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    return (log_std + 0.5 * (LOG_2PI + 1.0)).sum()


def policy_kl(p: Policy, q: Policy, obs: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(p || q) of two policies on the same observations."""
    return kl_from(p.discrete, p.net(obs), p.log_std, q.net(obs), q.log_std)


def kl_from(
    discrete: bool, out_p: torch.Tensor, log_std_p: torch.Tensor, out_q: torch.Tensor, log_std_q: torch.Tensor
) -> torch.Tensor:
    """Per-sample KL(p || q) from network outputs.

    Gaussian: analytic, averaged over action dimensions (spec). Discrete: the full categorical KL.
    """
    if discrete:
        lp, lq = torch.log_softmax(out_p, -1), torch.log_softmax(out_q, -1)
        return (lp.exp() * (lp - lq)).sum(-1)
    var_p, var_q = torch.exp(2 * log_std_p), torch.exp(2 * log_std_q)
    kl = log_std_q - log_std_p + (var_p + (out_p - out_q).pow(2)) / (2 * var_q) - 0.5
    return kl.mean(-1)


class ValueNet(nn.Module):
    def __init__(self, obs_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp([obs_dim, *hidden, 1], nn.Tanh, output_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(obs).squeeze(-1)
        return out


def flat_obs_dim(space: gym.Space) -> int:
    return int(np.prod(space.shape)) if space.shape else 1


def make_adam(params: Iterable[nn.Parameter], lr: float, eps: float = 1e-5) -> LeanAdam:
    """Adam for the small on-policy networks: ``LeanAdam`` (same update, far less per-step overhead)."""
    return LeanAdam(params, lr=lr, eps=eps)


def draw_noise(rows: int, num_envs: int, action_dim: int, continuous: bool, generator: torch.Generator) -> torch.Tensor:
    """Sampling noise for a whole collection chunk in one call (see ``Policy.sample``).

    One call per chunk is cheaper than one per step and keeps all sampling on one saved RNG stream.
    """
    if continuous:
        return torch.randn((rows, num_envs, action_dim), generator=generator)
    return torch.rand((rows, num_envs), generator=generator)


def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale gradients so their global L2 norm is at most ``max_norm``; returns the norm before.

    Same result as ``nn.utils.clip_grad_norm_``, computed with one concatenation instead of a
    norm per parameter: fewer ops for our small networks, and it runs every minibatch.
    """
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.cat([g.reshape(-1) for g in grads]).norm()
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:  # a scale clamped to 1 would leave every gradient as it is: skip the kernels
        torch._foreach_mul_(grads, scale)
    return total


class QNet(nn.Module):
    """Q(s, a): one output per action for Discrete, (obs, clipped action) -> scalar for Box."""

    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, obs_dim: int, space: gym.Space[Any], hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.discrete = isinstance(space, gym.spaces.Discrete)
        if self.discrete:
            self.net = mlp([obs_dim, *hidden, int(space.n)], nn.Tanh, output_gain=1.0)  # type: ignore[attr-defined]
        else:
            assert isinstance(space, gym.spaces.Box)
            self.net = mlp([obs_dim + int(space.shape[0]), *hidden, 1], nn.Tanh, output_gain=1.0)
            # the env clips actions, so Q(s, a) = Q(s, clip(a)): clipping keeps inputs on the data's range
            self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))

    def forward(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            return self.net(obs).gather(-1, actions.long().view(-1, 1)).squeeze(-1)  # type: ignore[no-any-return]
        a = torch.clamp(actions, self.low, self.high)
        return self.net(torch.cat([obs, a], -1)).squeeze(-1)  # type: ignore[no-any-return]

    def value(self, obs: torch.Tensor, policy: Policy, n_samples: int, gen: torch.Generator) -> torch.Tensor:
        """V(s) = E_{a~pi} Q(s, a)."""
        if self.discrete:
            return (torch.softmax(policy.net(obs), -1) * self.net(obs)).sum(-1)
        noise = torch.randn(n_samples, *obs.shape[:1], policy.action_dim, generator=gen)
        actions = (policy.net(obs) + policy.log_std.exp() * noise).reshape(-1, policy.action_dim)
        q = self.forward(obs.repeat(n_samples, 1), actions)
        return q.view(n_samples, -1).mean(0)
