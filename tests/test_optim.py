"""LeanAdam takes exactly torch.optim.Adam's steps and shares its checkpoint layout."""

import copy

import torch
from torch import nn

from hybridpg.optim import LeanAdam


def _step_both(x: torch.Tensor, *pairs: tuple[nn.Module, torch.optim.Optimizer]) -> None:
    for model, opt in pairs:
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()


def _twin_nets(seed: int, outputs: int) -> tuple[nn.Module, nn.Module, LeanAdam, torch.optim.Adam]:
    """One Tanh MLP with LeanAdam and an identical copy with torch's Adam, at the same settings."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, outputs))
    ref = copy.deepcopy(net)
    ours, theirs = LeanAdam(net.parameters(), lr=3e-3, eps=1e-5), torch.optim.Adam(ref.parameters(), lr=3e-3, eps=1e-5)
    return net, ref, ours, theirs


def test_lean_adam_matches_torch_adam_over_many_steps_with_lr_changes():
    net, ref, ours, theirs = _twin_nets(0, 2)
    for i in range(50):
        x = torch.randn(32, 5)
        _step_both(x, (net, ours), (ref, theirs))
        if i == 20:  # learning-rate annealing edits param_groups in place
            for opt in (ours, theirs):
                opt.param_groups[0]["lr"] = 1e-3
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # the state layout is torch's, so the two load each other's checkpoints
    theirs_again = torch.optim.Adam(ref.parameters(), lr=1e-3, eps=1e-5)
    theirs_again.load_state_dict(copy.deepcopy(ours.state_dict()))
    for key in ("exp_avg", "exp_avg_sq", "step"):
        for p, q in zip(net.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(ours.state[p][key], theirs_again.state[q][key], rtol=1e-5, atol=1e-7)
    # and keep stepping alike there: ours shares one step tensor per group internally, which torch's
    # Adam, incrementing each parameter's in place, must not receive (our groups lack Adam's other keys)
    for group in theirs_again.param_groups:
        for key, value in theirs_again.defaults.items():
            group.setdefault(key, value)
    for _ in range(5):
        _step_both(torch.randn(32, 5), (net, ours), (ref, theirs_again))
    assert all(float(theirs_again.state[q]["step"]) == 55.0 for q in ref.parameters())
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_lean_adam_is_bit_identical_to_torch_fused_adam_and_resumes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 2))
    ref = copy.deepcopy(net)
    ours = LeanAdam(net.parameters(), lr=3e-4, fused=True)
    theirs = torch.optim.Adam(ref.parameters(), lr=3e-4, fused=True)
    for i in range(30):
        x = torch.randn(32, 5)
        _step_both(x, (net, ours), (ref, theirs))
        if i == 10:  # a checkpoint round trip mid-run keeps the same trajectory
            state = copy.deepcopy(ours.state_dict())
            ours = LeanAdam(net.parameters(), lr=3e-4, fused=True)
            ours.load_state_dict(state)
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        assert torch.equal(a, b)


def test_lean_adam_skips_parameters_without_gradients():
    frozen = nn.Parameter(torch.ones(3))
    live = nn.Parameter(torch.ones(3))
    opt = LeanAdam([frozen, live], lr=0.1)
    live.grad = torch.ones(3)
    opt.step()
    assert torch.equal(frozen, torch.ones(3)) and bool((live < 1).all())


def test_flat_lean_adam_steps_whole_buffers_and_matches_torch_adam_through_reloads_and_repointing():
    net, ref, ours, theirs = _twin_nets(1, 3)
    flat = ours.flat[0]
    assert flat is not None
    params = list(net.parameters())
    # the parameters live in the flat buffer, so the module's own writes reach it and vice versa
    assert all(p.data_ptr() == ptr for p, ptr in zip(params, flat.pointers, strict=True))
    net.load_state_dict({k: torch.zeros_like(v) for k, v in ref.state_dict().items()})
    assert not bool(flat.param.any())
    net.load_state_dict(ref.state_dict())
    assert torch.equal(flat.param, torch.cat([p.detach().reshape(-1) for p in ref.parameters()]))
    for _ in range(10):
        _step_both(torch.randn(32, 5), (net, ours), (ref, theirs))
    exp_avg = [ours.state[p]["exp_avg"] for p in params]
    exp_avg_sq = [ours.state[p]["exp_avg_sq"] for p in params]
    assert flat.holds(params, exp_avg, exp_avg_sq)
    # loading an optimizer checkpoint puts the moments back into the flat buffers
    ours.load_state_dict(copy.deepcopy(theirs.state_dict()))
    assert flat.holds(params, [ours.state[p]["exp_avg"] for p in params], [ours.state[p]["exp_avg_sq"] for p in params])
    loaded = torch.cat([theirs.state[q]["exp_avg"].reshape(-1) for q in ref.parameters()])
    torch.testing.assert_close(flat.exp_avg, loaded)
    for _ in range(10):
        _step_both(torch.randn(32, 5), (net, ours), (ref, theirs))
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a parameter moved elsewhere (as stacking seeds does) is stepped where it now lives
    params[0].data = params[0].detach().clone()
    assert not flat.holds(params, [ours.state[p]["exp_avg"] for p in params],
                          [ours.state[p]["exp_avg_sq"] for p in params])
    for _ in range(10):
        _step_both(torch.randn(32, 5), (net, ours), (ref, theirs))
    for a, b in zip(net.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_flat_lean_adam_leaves_frozen_parameters_out_of_the_buffer():
    frozen = nn.Parameter(torch.ones(3), requires_grad=False)
    a, b = nn.Parameter(torch.ones(4)), nn.Parameter(torch.ones(2, 2))
    opt = LeanAdam([frozen, a, b], lr=0.1)
    flat = opt.flat[0]
    assert flat is not None and flat.params == [a, b] and flat.param.numel() == 8
    a.grad, b.grad = torch.ones(4), -torch.ones(2, 2)
    opt.step()
    assert torch.equal(frozen, torch.ones(3)) and bool((a < 1).all()) and bool((b > 1).all())
    assert bool((flat.param[:4] < 1).all())


def test_loading_a_state_dict_leaves_it_as_it_was_through_later_steps():
    """Torch's loader keeps the given step tensors; LeanAdam counts steps in place, so it must copy
    them, or a state dict loaded twice (a restart from the same snapshot) would count on from wherever
    the first load's run left it, with per-parameter counts that no longer agree."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    opt = LeanAdam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 4)).sum().backward()
    opt.step()
    snapshot = copy.deepcopy(opt.state_dict())
    opt.load_state_dict(snapshot)
    for _ in range(3):
        net(torch.randn(5, 4)).sum().backward()
        opt.step()
    assert [float(s["step"]) for s in snapshot["state"].values()] == [1.0] * 4
    opt.load_state_dict(snapshot)
    assert opt.flat_state() is not None  # the reloaded counts agree, so the step is shared again
    assert float(opt.state[next(net.parameters())]["step"]) == 1.0


def test_a_copied_or_unpickled_lean_adam_keeps_stepping_like_the_original_on_its_own_buffers():
    import pickle

    net, _, ours, _ = _twin_nets(3, 2)
    x = torch.randn(32, 5)
    _step_both(x, (net, ours))
    copies = [copy.deepcopy((net, ours)), pickle.loads(pickle.dumps((net, ours)))]
    for _ in range(4):
        _step_both(x, (net, ours), *copies)
    for twin, twin_opt in copies:
        assert twin_opt.flat_state() is not None  # flat buffers of its own, so the compiled step still applies
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
        state, theirs = twin_opt.state_dict()["state"], ours.state_dict()["state"]
        assert all(torch.equal(state[k][m], theirs[k][m]) for k in theirs for m in ("exp_avg", "exp_avg_sq", "step"))
