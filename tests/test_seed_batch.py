"""Seeds as a batch dimension: the stacked kernels against per-seed autograd, and each seed of a
batch against the single run with that seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
import torch

from hybridpg import PPO, PROPS, ROS, PPOBuffer
from hybridpg.algorithms.onpolicy import OnPolicyAgent
from hybridpg.algorithms.seed_batch import SeedBatch
from hybridpg.errors import ConfigError
from hybridpg.networks import Policy, ValueNet, clip_grad_norm
from hybridpg.optim import LeanAdam
from hybridpg.stacked import LogisticTanh, StackedAdam, StackedMLP, StackedPolicy, clip_grad_norm_per_seed

# Hopper-v5's shapes (11 observations, 3 actions) at the spec's 64-64, and a wide 256-256; CartPole's discrete
SHAPES = [(11, gym.spaces.Box(-1, 1, (3,)), (64, 64)), (11, gym.spaces.Box(-1, 1, (3,)), (256, 256)),
          (4, gym.spaces.Discrete(2), (64, 64))]


def _policies(obs_dim: int, space: gym.Space[Any], hidden: tuple[int, ...], n: int = 3) -> list[Policy]:
    policies = []
    for k in range(n):
        torch.manual_seed(k)
        policy = Policy(obs_dim, space, hidden)
        if not policy.discrete:
            with torch.no_grad():
                policy.log_std.uniform_(-1, 0.5)
        policies.append(policy)
    return policies


@pytest.mark.parametrize(("obs_dim", "space", "hidden"), SHAPES)
def test_stacked_policy_matches_each_policy_with_plain_autograd(obs_dim: int, space: gym.Space[Any],
                                                                hidden: tuple[int, ...]) -> None:
    policies = _policies(obs_dim, space, hidden)
    reference = _policies(obs_dim, space, hidden)  # the same weights, left unstacked
    stacked = StackedPolicy.of(policies)
    rows = 256
    obs = torch.randn(3, rows, obs_dim)
    if stacked.discrete:
        actions, noise = torch.randint(0, 2, (3, rows)), torch.rand(3, rows)
    else:
        actions, noise = torch.randn(3, rows, 3), torch.randn(3, rows, 3)
    logp, entropy = stacked.log_prob(obs, actions)
    (logp.sum() + entropy.sum()).backward()
    samples = stacked.sample(obs, noise)
    for k, ref in enumerate(reference):
        ref_logp, ref_entropy = ref.log_prob(obs[k], actions[k])
        (ref_logp.sum() + ref_entropy.sum()).backward()
        torch.testing.assert_close(logp[k], ref_logp, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(entropy[k], ref_entropy, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(samples[k], ref.sample(obs[k], noise[k]), rtol=1e-5, atol=1e-5)
        for p, q in zip(stacked.parameters, ref.parameters(), strict=True):
            if q.grad is not None:
                assert p.grad is not None
                torch.testing.assert_close(p.grad[k], q.grad, rtol=1e-4, atol=1e-4)
    # the seeds' own modules read the stack: a write to it shows in seed 1's policy
    with torch.no_grad():
        stacked.net.biases[-1][1].fill_(0.5)
    assert bool((policies[1].net[-1].bias == 0.5).all()) and not bool((policies[0].net[-1].bias == 0.5).any())


@pytest.mark.parametrize("shape", [(10, 240, 64), (10, 64, 256), (1, 1, 64)])
def test_logistic_tanh_is_tanh_forward_and_backward(shape: tuple[int, ...]) -> None:
    x = (torch.randn(shape) * 3).requires_grad_(True)
    with torch.no_grad():
        x.view(-1)[:4] = torch.tensor([0.0, 1e-6, 40.0, -40.0])  # zero, tiny and saturated inputs
    y = LogisticTanh.apply(x)
    y_ref = torch.tanh(x)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=3e-7)
    assert y.view(-1)[2] == 1.0 and y.view(-1)[3] == -1.0
    g = torch.randn(shape)
    (grad,) = torch.autograd.grad(y, x, g)
    (grad_ref,) = torch.autograd.grad(y_ref, x, g)
    torch.testing.assert_close(grad, grad_ref, rtol=0, atol=5e-6)


def test_stacked_value_net_matches_each_value_net() -> None:
    nets = []
    for k in range(3):
        torch.manual_seed(k)
        nets.append(ValueNet(11, (64, 64)))
    stacked = StackedMLP.of(nets)
    obs = torch.randn(3, 100, 11)
    out = stacked(obs).squeeze(-1)
    for k, net in enumerate(nets):
        torch.testing.assert_close(out[k], net(obs[k]), rtol=1e-5, atol=1e-5)


def test_clip_per_seed_clips_each_seed_by_its_own_norm() -> None:
    params = [torch.zeros(3, 64, 11, requires_grad=True), torch.zeros(3, 64, requires_grad=True)]
    grads = [torch.randn(3, 64, 11) * torch.tensor([0.001, 1.0, 10.0]).view(3, 1, 1), torch.randn(3, 64)]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    norms = clip_grad_norm_per_seed(params, 0.5)
    for k in range(3):
        singles = [torch.zeros(g.shape[1:], requires_grad=True) for g in grads]
        for p, g in zip(singles, grads, strict=True):
            p.grad = g[k].clone()
        norm = clip_grad_norm(singles, 0.5)  # type: ignore[arg-type]
        torch.testing.assert_close(norms[k], norm)
        for p, q in zip(params, singles, strict=True):
            assert p.grad is not None and q.grad is not None
            torch.testing.assert_close(p.grad[k], q.grad)


@pytest.mark.parametrize("masks", [[[True] * 3] * 4, [[True, True, True], [True, False, True], [False, False, True],
                                                       [True, True, True]]])
def test_stacked_adam_is_lean_adam_per_seed_and_a_masked_seed_does_not_move(masks: list[list[bool]]) -> None:
    torch.manual_seed(0)
    per_seed = [[torch.nn.Parameter(torch.randn(64, 11)), torch.nn.Parameter(torch.randn(64))] for _ in range(3)]
    reference = [[torch.nn.Parameter(p.detach().clone()) for p in ps] for ps in per_seed]
    optimizers = [LeanAdam(ps, lr=3e-4 * (k + 1) if any(not m for m in sum(masks, [])) else 3e-4, eps=1e-5)
                  for k, ps in enumerate(per_seed)]
    ref_optimizers = [LeanAdam(ps, lr=opt.param_groups[0]["lr"], eps=1e-5)
                      for ps, opt in zip(reference, optimizers, strict=True)]
    stacks = [torch.stack([ps[j].detach() for ps in per_seed]).requires_grad_(True) for j in range(2)]
    for k, ps in enumerate(per_seed):
        for j, p in enumerate(ps):
            p.data = stacks[j].detach()[k]
    adam = StackedAdam(stacks, optimizers, per_seed)
    for mask in masks:
        grads = [torch.randn_like(s) for s in stacks]
        before = [s.detach().clone() for s in stacks]
        moments = [m.clone() for m in adam.exp_avg]
        for s, g in zip(stacks, grads, strict=True):
            s.grad = g.clone()
        adam.step(torch.tensor(mask))
        for k, on in enumerate(mask):
            if on:
                for q, g in zip(reference[k], grads, strict=True):
                    q.grad = g[k].clone()
                ref_optimizers[k].step()
            else:  # neither the weights nor the moments of a stopped seed move
                for s, b, m, m0 in zip(stacks, before, adam.exp_avg, moments, strict=True):
                    assert torch.equal(s[k], b[k]) and torch.equal(m[k], m0[k])
            for j in range(2):
                torch.testing.assert_close(stacks[j][k], reference[k][j], rtol=1e-6, atol=1e-7)
    # each seed's own optimizer state is the one a single run writes
    for opt, ref in zip(optimizers, ref_optimizers, strict=True):
        mine, theirs = opt.state_dict()["state"], ref.state_dict()["state"]
        for key in theirs:
            assert float(mine[key]["step"]) == float(theirs[key]["step"])
            torch.testing.assert_close(mine[key]["exp_avg"], theirs[key]["exp_avg"], rtol=1e-6, atol=1e-7)


def test_the_shuffle_gives_each_seed_the_rows_of_its_own_permutation_and_stopped_seeds_none() -> None:
    """``seed_updates._shuffle`` draws what a single run's ``randperm`` would from each active seed's
    generator; a stopped seed draws nothing and keeps its order; the seeds' rows lie side by side."""
    from hybridpg.algorithms.seed_updates import _shuffle

    packed = torch.randn(3, 50, 7)
    active = torch.tensor([True, False, True])
    used = [torch.Generator().manual_seed(k) for k in range(3)]
    shuffled = _shuffle(packed, active, used)
    for k in range(3):
        order = torch.randperm(50, generator=torch.Generator().manual_seed(k)) if active[k] else torch.arange(50)
        assert torch.equal(shuffled[k], packed[k][order])
    assert torch.equal(used[1].get_state(), torch.Generator().manual_seed(1).get_state())  # drew nothing
    assert not torch.equal(used[0].get_state(), torch.Generator().manual_seed(0).get_state())
    assert shuffled[:, 10:30].stride() == shuffled[:, 0:40].stride() == (7, 21, 1)


def _flat(agent: OnPolicyAgent) -> torch.Tensor:
    modules = [agent.policy, agent.value, *([agent.sampler.behavior] if hasattr(agent.sampler, "behavior") else [])]
    return torch.cat([p.detach().reshape(-1) for m in modules for p in m.parameters()])


SMALL: dict[str, Any] = dict(n_steps=256, n_minibatches=4, n_epochs=4, eval_freq=0, checkpoint_freq=0, se_freq=0)
CASES = [
    (PPO, "CartPole-v1", {}),
    (PPOBuffer, "CartPole-v1", {"buffer_batches": 2}),
    (PROPS, "Pendulum-v1", {"buffer_batches": 2, "behavior_steps": 64, "props_epochs": 4}),
    (PROPS, "CartPole-v1", {"buffer_batches": 2, "behavior_steps": 64, "props_epochs": 4}),
    (ROS, "CartPole-v1", {"buffer_batches": 2, "behavior_steps": 64, "ros_lr": 0.05}),
]


@pytest.mark.parametrize(("algo", "env", "extra"), CASES, ids=lambda c: getattr(c, "__name__", str(c)))
def test_each_seed_of_a_batch_follows_its_single_run(algo: type[OnPolicyAgent], env: str,
                                                     extra: dict[str, Any]) -> None:
    seeds = [0, 5, 7]
    batch = SeedBatch.create(algo, env, seeds, **SMALL, **extra)
    batch.learn(768, progress=False)
    for k, seed in enumerate(seeds):
        single = algo(env, seed=seed, **SMALL, **extra)
        single.learn(768, progress=False)
        mine = batch.agents[k]
        assert mine.global_step == single.global_step and mine.updates == single.updates == 3
        torch.testing.assert_close(_flat(mine), _flat(single), rtol=0, atol=1e-4)
        assert bool((_flat(mine) != _flat(batch.agents[(k + 1) % 3])).any())  # seeds really differ
        single.close()
    batch.close()


def test_a_batch_of_one_is_the_single_run(tmp_path: Path) -> None:
    extra = {"buffer_batches": 2, "behavior_steps": 64, "props_epochs": 4}
    batch = SeedBatch.create(PROPS, "Pendulum-v1", [3], **SMALL, **extra)
    batch.learn(512, run_dirs=[tmp_path / "batch"], progress=False)
    single = PROPS("Pendulum-v1", seed=3, **SMALL, **extra)
    single.learn(512, run_dir=tmp_path / "single", progress=False)
    for key in ("props/clipfrac", "props/behavior_kl", "props/loss", "props/epochs_run", "losses/policy_loss",
                "losses/clipfrac", "losses/approx_kl"):  # the update's diagnostics too, stopped or run to the end
        mine, theirs = _metric(tmp_path / "batch", key), _metric(tmp_path / "single", key)
        assert mine and mine == pytest.approx(theirs, rel=1e-3, abs=1e-5), key
    torch.testing.assert_close(_flat(batch.agents[0]), _flat(single), rtol=0, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(batch.agents[0].buffer.actions),
                               torch.from_numpy(single.buffer.actions), rtol=0, atol=1e-4)
    batch.close()
    single.close()


def _metric(run_dir: Path, key: str) -> list[float]:
    lines = (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    return [row[key] for row in lines if key in row]


def test_a_seed_that_hits_its_kl_threshold_stops_alone(tmp_path: Path) -> None:
    """Per-seed early stops: the epochs each seed ran, PPO's and PROPS's, are its single run's."""
    extra = {"buffer_batches": 2, "behavior_steps": 64, "props_epochs": 8, "target_kl": 0.01,
             "props_target_kl": 0.01, "learning_rate": 3e-3, "props_lr": 3e-3}
    seeds = [0, 1, 2, 3]
    dirs = [tmp_path / f"seed{s}" for s in seeds]
    batch = SeedBatch.create(PROPS, "CartPole-v1", seeds, **SMALL, **extra)
    batch.learn(1024, run_dirs=dirs, progress=False)
    batch.close()
    ppo_epochs, props_epochs = [], []
    for seed, run_dir in zip(seeds, dirs, strict=True):
        single_dir = tmp_path / f"single{seed}"
        PROPS("CartPole-v1", seed=seed, **SMALL, **extra).learn(1024, run_dir=single_dir, progress=False).close()
        for key, seen in (("losses/epochs_run", ppo_epochs), ("props/epochs_run", props_epochs)):
            assert _metric(run_dir, key) == _metric(single_dir, key)
            seen.append(tuple(_metric(run_dir, key)))
        assert _metric(run_dir, "eval/return_mean") == pytest.approx(_metric(single_dir, "eval/return_mean"))
        for key in ("props/clipfrac", "props/behavior_kl", "props/grad_steps", "losses/policy_loss"):
            assert _metric(run_dir, key) == pytest.approx(_metric(single_dir, key), rel=1e-3, abs=1e-4), key
    # the thresholds bite, and not alike for every seed: the masks are exercised
    assert len(set(ppo_epochs)) > 1 and min(min(e) for e in ppo_epochs) < SMALL["n_epochs"]
    assert len(set(props_epochs)) > 1


def test_batch_run_folders_are_single_run_folders(tmp_path: Path) -> None:
    batch = SeedBatch.create(PPO, "CartPole-v1", [0, 1], **SMALL)
    batch.learn(512, run_dirs=[tmp_path / "b0", tmp_path / "b1"], progress=False)
    batch.close()
    PPO("CartPole-v1", seed=1, **SMALL).learn(512, run_dir=tmp_path / "single", progress=False).close()

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "tb" not in p.parts}

    assert files(tmp_path / "b1") == files(tmp_path / "single")
    assert (tmp_path / "b1" / "config.yaml").read_text() == (tmp_path / "single" / "config.yaml").read_text()
    mine = json.loads((tmp_path / "b1" / "summary.json").read_text())
    theirs = json.loads((tmp_path / "single" / "summary.json").read_text())
    assert mine.keys() == theirs.keys() and mine["eval_return_mean"] == pytest.approx(theirs["eval_return_mean"])
    # a seed's checkpoint holds that seed alone, and loads as a single run that continues
    size_batch = (tmp_path / "b1" / "checkpoints" / "latest.pt").stat().st_size
    size_single = (tmp_path / "single" / "checkpoints" / "latest.pt").stat().st_size
    assert abs(size_batch - size_single) < 0.05 * size_single
    agent = PPO.load(tmp_path / "b1")
    agent.learn(256, reset=False, progress=False)
    assert agent.global_step == 768
    agent.close()


def test_a_batch_resumes_exactly(tmp_path: Path) -> None:
    extra = {"buffer_batches": 2, "behavior_steps": 64, "props_epochs": 4, "anneal_lr": True}
    dirs = [tmp_path / "seed0", tmp_path / "seed1"]
    straight = SeedBatch.create(PROPS, "Pendulum-v1", [0, 1], **SMALL, **extra)
    straight.learn(1024, progress=False)
    first = SeedBatch.create(PROPS, "Pendulum-v1", [0, 1], **SMALL, **extra)
    first.learn(512, run_dirs=dirs, horizon=1024, progress=False)
    first.close()
    resumed = SeedBatch.load(dirs)
    resumed.learn(512, run_dirs=dirs, reset=False, horizon=1024, progress=False)
    for a, b in zip(resumed.agents, straight.agents, strict=True):
        assert torch.equal(_flat(a), _flat(b))
    resumed.close()
    straight.close()


def test_a_batch_refuses_what_it_cannot_train_together() -> None:
    ppo, props = PPO("CartPole-v1", seed=0, **SMALL), PROPS("CartPole-v1", seed=1, **SMALL)
    other = PPO("CartPole-v1", seed=2, **{**SMALL, "learning_rate": 1e-3})
    twin = PPO("CartPole-v1", seed=0, **SMALL)
    with pytest.raises(ConfigError, match="share the algorithm"):
        SeedBatch([ppo, props])
    with pytest.raises(ConfigError, match="share every setting"):
        SeedBatch([ppo, other])
    with pytest.raises(ConfigError, match="each seed once"):
        SeedBatch([ppo, twin])
    for agent in (ppo, props, other, twin):
        agent.close()


def _cli(*args: str) -> int:
    from hybridpg.cli import main

    return main(list(args))


def test_train_seeds_writes_one_run_folder_per_seed_and_resume_continues_the_batch(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    small = ["--n-steps", "256", "--n-minibatches", "4", "--n-epochs", "4", "--eval-freq", "0",
             "--checkpoint-freq", "0", "--progress", "off"]
    assert _cli("train", "--algo", "ppo", "--env", "CartPole-v1", "--seeds", "0,2", "--total-timesteps", "512",
                "--run-dir", str(tmp_path / "straight"), *small) == 0
    assert [d.name for d in sorted((tmp_path / "straight").iterdir())] == ["seed0", "seed2"]
    # a batch paused half-way (a planned pause: checkpoint, no summary) continues with --resume BATCH
    paused = SeedBatch.create(PPO, "CartPole-v1", [0, 2], **SMALL)
    paused.learn(256, run_dirs=[tmp_path / "paused" / "seed0", tmp_path / "paused" / "seed2"], horizon=512,
                 progress=False)
    paused.close()
    assert not (tmp_path / "paused" / "seed0" / "summary.json").exists()
    assert _cli("train", "--resume", str(tmp_path / "paused")) == 0
    assert "resuming 2 seeds at step 256 of 512" in capsys.readouterr().out
    for seed in ("seed0", "seed2"):
        a, b = PPO.load(tmp_path / "paused" / seed), PPO.load(tmp_path / "straight" / seed)
        assert torch.equal(_flat(a), _flat(b))
        a.close()
        b.close()
    assert _cli("train", "--resume", str(tmp_path / "paused")) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_train_seeds_refuses_off_policy_algorithms_and_seed_with_seeds(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("train", "--algo", "sac", "--env", "Pendulum-v1", "--seeds", "2",
                "--run-dir", str(tmp_path / "x")) == 2
    assert "run sac once per --seed" in capsys.readouterr().err
    assert _cli("train", "--algo", "ppo", "--seed", "1", "--seeds", "2", "--run-dir", str(tmp_path / "y")) == 2
    assert "give --seed or --seeds, not both" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_sweep_trains_the_seeds_of_a_setting_together(tmp_path: Path) -> None:
    from hybridpg.experiments.sweep import SweepSpec, run_sweep

    overrides = {k: str(v) for k, v in SMALL.items()}
    spec = SweepSpec(algos=["ppo"], envs=["CartPole-v1"], seeds=[0, 1, 2], total_timesteps=512,
                     overrides=overrides, root=tmp_path, workers=1, seeds_per_process=2)
    assert [r.name for r in spec.runs()] == ["CartPole-v1/ppo/seeds0,1", "CartPole-v1/ppo/seed2"]
    progress = run_sweep(spec, stream=None, tty=False)
    assert progress.failed == 0
    single = PPO("CartPole-v1", seed=1, **SMALL)
    single.learn(512, progress=False)
    grouped = PPO.load(tmp_path / "CartPole-v1" / "ppo" / "seed1")
    torch.testing.assert_close(_flat(grouped), _flat(single), rtol=0, atol=1e-4)
    again = run_sweep(spec, stream=None, tty=False)  # a rerun skips the finished group
    assert again.failed == 0 and again.skipped == 2
    for agent in (single, grouped):
        agent.close()


def test_ctrl_c_of_a_seed_batch_checkpoints_every_seed_and_resume_continues_them(tmp_path: Path) -> None:
    from test_reliability_stops import _ctrl_c, _last_step  # the suite's Ctrl-C helpers (tests/ is on sys.path)

    from hybridpg.training.checkpoint import load_checkpoint

    batch_dir = tmp_path / "batch"
    argv = ["--algo", "props", "--env", "CartPole-v1", "--seeds", "0-2", "--n-steps", "256", "--behavior-steps",
            "64", "--eval-freq", "0", "--total-timesteps", "1000000", "--run-dir", str(batch_dir)]
    code, err = _ctrl_c(argv, batch_dir / "seed2", 256, tmp_path)
    assert code == 130 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted by SIGINT at step ") and f"--resume {batch_dir}" in last, err
    steps = {load_checkpoint(batch_dir / f"seed{k}" / "checkpoints" / "latest.pt")["global_step"] for k in range(3)}
    assert len(steps) == 1 and steps.pop() > 256  # every seed saved at the same safe point
    first = load_checkpoint(batch_dir / "seed0" / "checkpoints" / "latest.pt")["global_step"]
    assert _last_step(batch_dir / "seed2") <= first
    code, err = _ctrl_c(["--resume", str(batch_dir)], batch_dir / "seed2", first, tmp_path)
    assert code == 130 and "Traceback" not in err, err
    assert load_checkpoint(batch_dir / "seed1" / "checkpoints" / "latest.pt")["global_step"] > first


def test_a_seed_that_diverges_leaves_the_batch_and_the_others_finish(tmp_path: Path) -> None:
    from hybridpg.errors import NonFiniteError

    dirs = [tmp_path / f"seed{k}" for k in range(3)]
    batch = SeedBatch.create(PPO, "CartPole-v1", [0, 1, 2], **{**SMALL, "checkpoint_freq": 1})
    batch.learn(256, run_dirs=dirs, horizon=1024, progress=False)
    with torch.no_grad():  # seed 1's weights go bad: its next update finds them non-finite
        batch.agents[1].policy.net[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match=r"1 seed\(s\) diverged .*seed 1: training diverged at env step 512"):
        batch.learn(768, run_dirs=dirs, reset=False, horizon=1024, progress=False)
    assert [a.seed for a in batch.agents] == [0, 2]
    batch.close()
    for k in (0, 2):  # the others trained on to the end, as their single runs would
        assert json.loads((dirs[k] / "summary.json").read_text())["global_step"] == 1024
        single = PPO("CartPole-v1", seed=k, **SMALL)
        single.learn(1024, progress=False)
        finished = PPO.load(dirs[k])
        torch.testing.assert_close(_flat(finished), _flat(single), rtol=0, atol=1e-4)
        single.close()
        finished.close()
    assert not (dirs[1] / "summary.json").exists()  # seed 1 keeps its last good checkpoint
    kept = PPO.load(dirs[1])
    assert kept.global_step == 256 and bool(torch.isfinite(_flat(kept)).all())
    kept.close()
