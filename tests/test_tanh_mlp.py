"""``tanh_mlp``'s one-node Tanh MLP against plain autograd at the on-policy networks' real shapes."""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch

from hybridpg.networks import Policy, ValueNet
from hybridpg.tanh_mlp import TanhMLPFunction, plain_tanh_mlp, tanh_mlp

TIGHT = {"rtol": 1e-6, "atol": 1e-7}

# (obs dim, action space): Hopper-v5 and CartPole-v1
SHAPES = [(11, gym.spaces.Box(-1.0, 1.0, (3,))), (4, gym.spaces.Discrete(2))]


def linear_params(net: torch.nn.Module) -> tuple[torch.Tensor, ...]:
    return tuple(p for layer in net if isinstance(layer, torch.nn.Linear) for p in (layer.weight, layer.bias))


def networks(obs_dim: int, space: gym.Space) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    policy, value = Policy(obs_dim, space, (64, 64)), ValueNet(obs_dim, (64, 64))
    with torch.no_grad():  # trained-looking weights: larger output layers than the init's
        for net in (policy.net, value.net):
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return [policy.net, value.net]


def grads(out: torch.Tensor, weight: torch.Tensor, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad((out * weight).sum(), inputs)


@pytest.mark.parametrize("rows", [64, 2048])
@pytest.mark.parametrize(("obs_dim", "space"), SHAPES)
def test_outputs_and_every_gradient_match_plain_autograd(rows: int, obs_dim: int, space: gym.Space) -> None:
    for net in networks(obs_dim, space):
        params = linear_params(net)
        x = torch.randn(rows, obs_dim, requires_grad=True)
        ref = plain_tanh_mlp(x, params)
        out = TanhMLPFunction.apply(x, *params)
        torch.testing.assert_close(out, ref, **TIGHT)
        weight = torch.randn_like(ref)
        for got, want in zip(grads(out, weight, (x, *params)), grads(ref, weight, (x, *params)), strict=True):
            torch.testing.assert_close(got, want, **TIGHT)


@pytest.mark.parametrize(("obs_dim", "space"), SHAPES)
def test_input_without_grad_and_frozen_parameters(obs_dim: int, space: gym.Space) -> None:
    net = networks(obs_dim, space)[0]
    params = linear_params(net)
    x = torch.randn(64, obs_dim)  # observations never require grad
    out = tanh_mlp(x, params)
    assert out.grad_fn is not None
    weight = torch.randn_like(out)
    for got, want in zip(grads(out, weight, params), grads(plain_tanh_mlp(x, params), weight, params), strict=True):
        torch.testing.assert_close(got, want, **TIGHT)
    frozen = tuple(p.detach() for p in params)  # some inputs need no gradient: returns None for them
    partial = TanhMLPFunction.apply(x, frozen[0], frozen[1], *params[2:])
    got = grads(partial, weight, params[2:])
    want = grads(plain_tanh_mlp(x, (*frozen[:2], *params[2:])), weight, params[2:])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TIGHT)


@pytest.mark.parametrize(("obs_dim", "space"), SHAPES)
def test_no_grad_inference_mode_and_other_ranks(obs_dim: int, space: gym.Space) -> None:
    net = networks(obs_dim, space)[0]
    params = linear_params(net)
    x = torch.randn(64, obs_dim)
    ref = plain_tanh_mlp(x, params).detach()
    with torch.no_grad():
        out = tanh_mlp(x, params)
    assert out.grad_fn is None
    torch.testing.assert_close(out, ref, **TIGHT)
    with torch.inference_mode():
        torch.testing.assert_close(tanh_mlp(x, params), ref, **TIGHT)
    one = tanh_mlp(x[0], params)  # a single 1-D observation goes through plain ops
    torch.testing.assert_close(one, plain_tanh_mlp(x[0], params), **TIGHT)
    stacked = tanh_mlp(x.view(4, 16, obs_dim), params)
    torch.testing.assert_close(stacked.reshape(64, -1), ref, **TIGHT)


def test_double_backward_matches_plain_autograd() -> None:
    """Fisher-vector products (the natural-gradient step) differentiate the gradient again.

    In float64: a second derivative in float32 differs with summation order beyond tight tolerances.
    """
    net = networks(11, SHAPES[0][1])[0].double()
    params = linear_params(net)
    x = torch.randn(64, 11, dtype=torch.float64)
    v = [torch.randn_like(p) for p in params]

    def hvp(forward: object) -> tuple[torch.Tensor, ...]:
        out = forward(x, params)  # type: ignore[operator]
        g = torch.autograd.grad(out.pow(2).sum(), params, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g, v, strict=True))
        return torch.autograd.grad(dot, params)

    for got, want in zip(hvp(tanh_mlp), hvp(plain_tanh_mlp), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_gradcheck_in_double() -> None:
    torch.manual_seed(0)
    sizes = [4, 5, 6, 2]
    params = []
    for i in range(3):
        params += [
            torch.randn(sizes[i + 1], sizes[i], dtype=torch.float64, requires_grad=True),
            torch.randn(sizes[i + 1], dtype=torch.float64, requires_grad=True),
        ]
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(TanhMLPFunction.apply, (x, *params))
    assert torch.autograd.gradgradcheck(TanhMLPFunction.apply, (x, *params))


@pytest.mark.parametrize(("obs_dim", "space"), SHAPES)
def test_state_dict_layout_unchanged(obs_dim: int, space: gym.Space) -> None:
    policy, value = Policy(obs_dim, space, (64, 64)), ValueNet(obs_dim, (64, 64))
    out = 3 if isinstance(space, gym.spaces.Box) else 2
    assert {k: tuple(v.shape) for k, v in policy.state_dict().items()} == {
        "log_std": (out,),
        "net.0.weight": (64, obs_dim),
        "net.0.bias": (64,),
        "net.2.weight": (64, 64),
        "net.2.bias": (64,),
        "net.4.weight": (out, 64),
        "net.4.bias": (out,),
    }
    assert {k: tuple(v.shape) for k, v in value.state_dict().items()} == {
        "net.0.weight": (64, obs_dim),
        "net.0.bias": (64,),
        "net.2.weight": (64, 64),
        "net.2.bias": (64,),
        "net.4.weight": (1, 64),
        "net.4.bias": (1,),
    }


def test_checkpoint_of_a_plain_network_loads_and_gives_the_same_outputs() -> None:
    obs_dim, space = SHAPES[0]
    torch.manual_seed(1)
    plain = torch.nn.Sequential(
        torch.nn.Linear(obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 3)
    )
    saved = {"log_std": torch.full((3,), -0.5), **{f"net.{k}": v for k, v in plain.state_dict().items()}}
    policy = Policy(obs_dim, space, (64, 64))
    policy.load_state_dict(saved)
    x = torch.randn(64, obs_dim)
    torch.testing.assert_close(policy(x), plain(x), **TIGHT)
    weight = torch.randn(64, 3)
    got = grads(policy(x), weight, tuple(policy.net.parameters()))
    want = grads(plain(x), weight, tuple(plain.parameters()))
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, **TIGHT)
