"""N same-shaped networks as one: parameters stacked along a leading seed dimension.

Training several seeds in one process pays the per-op overhead of a small network once for all of
them: each layer becomes one batched matmul over ``[N, rows, features]``. Every seed's own module
keeps working unchanged, because its parameters become views of its row of the stacked tensors
(``Parameter.data`` points into the stack), so its ``state_dict``, acting, evaluation and
checkpoints read and write the same memory the batched update does. ``StackedAdam`` does the
same for each seed's Adam moments and step count, so a seed's optimizer ``state_dict`` is the one
a single run writes. Each piece is pinned to the per-seed modules by ``tests/test_seed_batch.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from hybridpg.networks import LOG_2PI, Policy, gaussian_log_prob, tanh
from hybridpg.optim import masked_adam_update


def stack_parameters(modules: Sequence[nn.Module]) -> list[torch.Tensor]:
    """One ``[N, *shape]`` leaf per parameter name; each module's parameter becomes a view of its row."""
    per_module = [list(m.parameters()) for m in modules]
    stacked: list[torch.Tensor] = []
    for params in zip(*per_module, strict=True):
        if len({p.shape for p in params}) != 1:
            raise ValueError("stacked modules must have the same parameter shapes")
        tensor = torch.stack([p.detach() for p in params]).requires_grad_(params[0].requires_grad)
        for k, p in enumerate(params):
            p.data = tensor.detach()[k]  # shares the stack's memory: both sides see every write
        stacked.append(tensor)
    return stacked


class LogisticTanh(torch.autograd.Function):
    """tanh(x) computed as 2 sigmoid(2x) - 1 (within 2e-7 of torch.tanh): torch.tanh's CPU kernel is
    several times slower than the logistic one in this torch build (BENCHMARKS.md, seeds as a batch
    dimension); the backward is tanh's own, grad * (1 - y^2)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


class StackedMLP:
    """The Linear/Tanh layers of N ``MLP``s (``networks.mlp``) as batched matmuls over their stacked
    parameters (weight, bias, weight, bias, ...)."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.weights, self.biases = list(tensors[0::2]), list(tensors[1::2])
        self.parameters = list(tensors)

    @classmethod
    def of(cls, nets: Sequence[nn.Module]) -> StackedMLP:
        return cls(stack_parameters(nets))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[N, rows, in]`` -> ``[N, rows, out]``, tanh between layers."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
            if i < last:
                x = tanh(x) if torch.compiler.is_compiling() else LogisticTanh.apply(x)
        return x


class StackedPolicy:
    """N ``Policy`` objects as one: log-probs and samples with a leading seed dimension."""

    def __init__(self, tensors: Sequence[torch.Tensor], discrete: bool, action_dim: int) -> None:
        self.discrete, self.action_dim = discrete, action_dim
        self.parameters = list(tensors)  # Module.parameters' order: log_std, then the net's layers
        self.log_std = self.parameters[0]
        self.net = StackedMLP(self.parameters[1:])

    @classmethod
    def of(cls, policies: Sequence[Policy]) -> StackedPolicy:
        return cls(stack_parameters(policies), policies[0].discrete, policies[0].action_dim)

    def log_prob_from(self, out: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample log-prob ``[N, rows]`` and entropy ``[N, rows]`` from network outputs."""
        if self.discrete:
            logp_all = torch.log_softmax(out, dim=-1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            return logp, -(logp_all.exp() * logp_all).sum(-1)
        log_std = self.log_std.unsqueeze(1)
        entropy = (log_std + 0.5 * (LOG_2PI + 1.0)).sum(-1)
        return gaussian_log_prob(out, log_std, actions), entropy.expand(out.shape[:2])

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.log_prob_from(self.net(obs), actions)

    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``Policy.sample`` per seed: N(0,1) noise ``[N, rows, A]``, or U(0,1) ``[N, rows]`` for Categorical."""
        out = self.net(obs)
        if self.discrete:
            cdf = torch.softmax(out, dim=-1).cumsum(-1)
            return torch.searchsorted(cdf, noise.unsqueeze(-1)).clamp_max(self.action_dim - 1).squeeze(-1)
        return out + self.log_std.exp().unsqueeze(1) * noise


def seed_shape(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-seed ``[N]`` tensor viewed to broadcast against ``like`` (``[N, ...]``)."""
    return mask.view(-1, *([1] * (like.dim() - 1)))


def clip_grad_norm_per_seed(params: Sequence[torch.Tensor], max_norm: float) -> torch.Tensor:
    """``networks.clip_grad_norm`` for each seed's slice on its own; returns the ``[N]`` norms before."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1).norm(dim=1)
    scale = (max_norm / (total + 1e-6)).clamp_max(1.0)
    for g in grads:
        g.mul_(seed_shape(scale, g))
    return total


class StackedAdam:
    """Adam (as ``optim.LeanAdam``) on stacked parameters, each seed with its own lr, step count and
    mask: a seed outside the mask takes no step, and its moments and step count do not move.

    The moments live here, as one ``[N, P]`` buffer each (``P`` the parameters of one seed), so a
    step is a couple of dozen kernels whatever the number of layers; every seed's own optimizer
    state holds views of them, so saving or loading a seed's optimizer is what a single run would
    do (call ``StackedAdam`` again after a seed's optimizer loaded new state, to stack it).
    """

    def __init__(self, params: Sequence[torch.Tensor], optimizers: Sequence[torch.optim.Optimizer],
                 per_seed_params: Sequence[Sequence[nn.Parameter]]) -> None:
        self.params = [p for p in params if p.requires_grad]
        group = optimizers[0].param_groups[0]
        self.betas: tuple[float, float] = group["betas"]
        self.eps: float = group["eps"]
        self.optimizers = optimizers
        trainable = [[q for q in qs if q.requires_grad] for qs in per_seed_params]
        n = len(optimizers)
        self.steps = torch.zeros(n)
        self.sizes = [p[0].numel() for p in self.params]
        self.flat_avg = torch.zeros(n, sum(self.sizes))
        self.flat_avg_sq = torch.zeros(n, sum(self.sizes))
        self.exp_avg = [m.view_as(p) for m, p in zip(self.flat_avg.split(self.sizes, dim=1), self.params, strict=True)]
        self.exp_avg_sq = [
            v.view_as(p) for v, p in zip(self.flat_avg_sq.split(self.sizes, dim=1), self.params, strict=True)
        ]
        for k, (opt, qs) in enumerate(zip(optimizers, trainable, strict=True)):
            for j, q in enumerate(qs):
                saved = opt.state.get(q)
                if saved:
                    self.steps[k] = float(saved["step"])
                    self.exp_avg[j][k].copy_(saved["exp_avg"])
                    self.exp_avg_sq[j][k].copy_(saved["exp_avg_sq"])
            for j, q in enumerate(qs):  # the seed's own optimizer now reads and writes the stack
                opt.state[q] = {"step": self.steps[k], "exp_avg": self.exp_avg[j][k],
                                "exp_avg_sq": self.exp_avg_sq[j][k]}

    def learning_rates(self) -> torch.Tensor:
        return torch.tensor([float(opt.param_groups[0]["lr"]) for opt in self.optimizers])

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        """One Adam step for the seeds where ``active`` (bool ``[N]``) holds (every parameter has a gradient)."""
        grad = torch.cat([p.grad.reshape(p.shape[0], -1) for p in self.params], dim=1)  # type: ignore[union-attr]
        update = masked_adam_update(self.flat_avg, self.flat_avg_sq, self.steps, self.learning_rates(), grad,
                                    active, self.betas, self.eps)
        for p, u in zip(self.params, update.split(self.sizes, dim=1), strict=True):
            p.sub_(u.view_as(p))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
