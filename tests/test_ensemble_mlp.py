"""EnsembleMLP's hand-written backward gives autograd's gradients, member by member."""

from __future__ import annotations

import copy

import pytest
import torch

from hybridpg.ensemble_mlp import EnsembleMLP


def reference(mlp: EnsembleMLP, x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Each member as a plain autograd MLP on its own slices of the stacked weights."""
    outs = []
    for j in range(mlp.n):
        layers = mlp.member_weights(j)
        h = x
        for i, (w, b) in enumerate(layers):
            hidden_to_hidden = 0 < i < len(layers) - 1
            h = (h.to(dtype) @ w.to(dtype)).float() + b if hidden_to_hidden else h @ w + b
            h = torch.relu(h) if i < len(layers) - 1 else h
        outs.append(h)
    return torch.stack(outs)


def grads(mlp: EnsembleMLP, x: torch.Tensor, out: torch.Tensor, upstream: torch.Tensor) -> list[torch.Tensor]:
    x.grad = None
    mlp.zero_grad(set_to_none=True)
    (out * upstream).sum().backward()
    assert x.grad is not None
    return [x.grad.clone()] + [p.grad.clone() if p.grad is not None else torch.zeros(0) for p in mlp.parameters()]


@pytest.mark.parametrize(("n", "hidden", "out_dim"), [(2, (16, 8), 1), (1, (16, 8, 12), 6), (3, (5,), 2)])
def test_output_and_every_gradient_match_autograd(n: int, hidden: tuple[int, ...], out_dim: int) -> None:
    check_against_reference(n, 7, hidden, out_dim, rows=10, seed=0, tol=1e-6)


def check_against_reference(n: int, in_dim: int, hidden: tuple[int, ...], out_dim: int, rows: int, seed: int,
                            tol: float) -> None:
    """The output and every gradient (input and weights) equal plain autograd's on the reference MLP."""
    torch.manual_seed(seed)
    mlp = EnsembleMLP(n, in_dim, hidden, out_dim)
    x = torch.randn(rows, in_dim, requires_grad=True)
    upstream = torch.randn(n, rows, out_dim)
    ours = mlp(x)
    theirs = reference(mlp, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=tol)
    for g_ours, g_ref in zip(grads(mlp, x, ours, upstream), grads(mlp, x, theirs, upstream), strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-5, atol=tol)


def test_detached_weights_get_no_gradient_and_the_input_gradient_is_unchanged() -> None:
    torch.manual_seed(1)
    mlp = EnsembleMLP(2, 4, (8, 8), 1)
    x = torch.randn(6, 4, requires_grad=True)
    upstream = torch.randn(2, 6, 1)
    full = grads(mlp, x, mlp(x), upstream)
    detached = grads(mlp, x, mlp(x, detached=True), upstream)
    assert all(p.grad is None for p in mlp.parameters())
    torch.testing.assert_close(detached[0], full[0])


def test_input_without_grad_still_trains_every_weight() -> None:
    torch.manual_seed(2)
    mlp = EnsembleMLP(2, 4, (8, 8), 1)
    mlp(torch.randn(6, 4)).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())


def test_reduced_precision_hidden_matmuls_match_autograd_in_that_precision() -> None:
    torch.manual_seed(3)
    mlp = EnsembleMLP(2, 5, (32, 32, 16), 1, matmul_dtype=torch.bfloat16)
    x = torch.randn(12, 5, requires_grad=True)
    upstream = torch.randn(2, 12, 1)
    ours = mlp(x)
    theirs = reference(mlp, x, torch.bfloat16)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-3, atol=1e-3)
    for g_ours, g_ref in zip(grads(mlp, x, ours, upstream), grads(mlp, x, theirs, upstream), strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=2e-2, atol=2e-2)


# SAC's networks at Hopper-v5 shapes (obs 11, action 3) and a 256-row batch: the twin critic on
# (obs, action) with one output, the actor on obs with (mean, log-std) per action dimension
REAL_SHAPES = [(2, 14, 1), (1, 11, 6)]


@pytest.mark.parametrize("hidden", [(64, 64), (256, 256)])
@pytest.mark.parametrize(("n", "in_dim", "out_dim"), REAL_SHAPES)
def test_real_shapes_output_and_every_gradient_match_autograd(
    hidden: tuple[int, int], n: int, in_dim: int, out_dim: int
) -> None:
    check_against_reference(n, in_dim, hidden, out_dim, rows=256, seed=4, tol=1e-5)


@pytest.mark.parametrize("hidden", [(64, 64), (256, 256)])
@pytest.mark.parametrize("detached", [False, True])
def test_input_blocks_get_their_own_gradients(hidden: tuple[int, int], detached: bool) -> None:
    """The critic's input as (observation, action) blocks at Hopper-v5 shapes: the same output and
    weight gradients as on the concatenated input, the action's gradient equal to that input's
    columns, none for the observation (which needs none), none for detached weights."""
    torch.manual_seed(6)
    mlp = EnsembleMLP(2, 14, hidden, 1)
    obs, act = torch.randn(256, 11), torch.randn(256, 3, requires_grad=True)
    x = torch.cat([obs, act.detach()], dim=-1).requires_grad_()
    upstream = torch.randn(2, 256, 1)
    ours = mlp(obs, act, detached=detached)
    theirs = reference(mlp, x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    mlp.zero_grad(set_to_none=True)
    (ours * upstream).sum().backward()
    ours_w = [p.grad for p in mlp.parameters()]
    mlp.zero_grad(set_to_none=True)
    (theirs * upstream).sum().backward()
    assert act.grad is not None and x.grad is not None
    torch.testing.assert_close(act.grad, x.grad[:, 11:], rtol=1e-5, atol=1e-5)
    for g_ours, p in zip(ours_w, mlp.parameters(), strict=True):
        if detached:
            assert g_ours is None
        else:
            assert g_ours is not None and p.grad is not None
            torch.testing.assert_close(g_ours, p.grad, rtol=1e-5, atol=1e-5)


def test_copies_and_loaded_weights_are_the_ones_used() -> None:
    """The layer list is built once; a deep copy must compute with its own weights, a load with the loaded."""
    torch.manual_seed(5)
    mlp = EnsembleMLP(2, 3, (8, 8), 1)
    x = torch.randn(4, 3)
    clone = copy.deepcopy(mlp)
    with torch.no_grad():
        for p in clone.parameters():
            p.add_(1.0)
        assert not torch.allclose(clone(x), mlp(x))
        torch.testing.assert_close(clone(x), reference(clone, x))
        mlp.load_state_dict(clone.state_dict())
        torch.testing.assert_close(mlp(x), clone(x))


@pytest.mark.parametrize("hidden", [(64, 64), (256, 256)])
def test_min_over_members_matches_autograd(hidden: tuple[int, int]) -> None:
    """The actor loss's head at Hopper-v5 shapes, weights detached: min over the twin critics and its
    gradient to the action (routed to each row's smaller critic) equal autograd's ``min(0)``."""
    torch.manual_seed(7)
    mlp = EnsembleMLP(2, 14, hidden, 1)
    obs, act = torch.randn(256, 11), torch.randn(256, 3, requires_grad=True)
    x = torch.cat([obs, act.detach()], dim=-1).requires_grad_()
    upstream = torch.randn(256)
    ours = mlp.min_over_members(obs, act, detached=True)
    theirs = reference(mlp, x).squeeze(-1).min(0).values
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    (ours * upstream).sum().backward()
    assert all(p.grad is None for p in mlp.parameters())  # detached weights get none
    (theirs * upstream).sum().backward()
    assert act.grad is not None and x.grad is not None
    torch.testing.assert_close(act.grad, x.grad[:, 11:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("hidden", [(64, 64), (256, 256)])
def test_squared_error_matches_autograd(hidden: tuple[int, int]) -> None:
    """The critic loss's head at Hopper-v5 shapes: ``(q - y)^2`` averaged over rows and summed over
    members, its value, the q it returns and every weight gradient equal autograd's."""
    torch.manual_seed(8)
    mlp = EnsembleMLP(2, 14, hidden, 1)
    obs, act, y = torch.randn(256, 11), torch.randn(256, 3), torch.randn(256)
    loss, q = mlp.squared_error(obs, act, target=y)
    assert not q.requires_grad
    mlp.zero_grad(set_to_none=True)
    (3.0 * loss).backward()
    ours_w = [p.grad for p in mlp.parameters()]
    q_ref = reference(mlp, torch.cat([obs, act], dim=-1)).squeeze(-1)
    loss_ref = (q_ref - y).pow(2).mean(1).sum()
    torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(q, q_ref, rtol=1e-5, atol=1e-5)
    mlp.zero_grad(set_to_none=True)
    (3.0 * loss_ref).backward()
    for g_ours, p in zip(ours_w, mlp.parameters(), strict=True):
        assert g_ours is not None and p.grad is not None
        torch.testing.assert_close(g_ours, p.grad, rtol=1e-5, atol=1e-5)
