"""Exact resume: N steps in one go == N/2 steps, save, a fresh process, load, N/2 more steps.

"Exact" means bit-identical parameters, optimizer moments, normalizer statistics, buffers, RNG
states and env state, and identical metrics.jsonl values (time fields excepted).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from hybridpg.algorithms import ALGORITHMS
from hybridpg.algorithms.base import Agent
from hybridpg.envs.vector import VecEnv

ON_POLICY = {"hidden_sizes": (32, 32), "n_epochs": 2, "n_minibatches": 4, "eval_freq": 2, "eval_episodes": 2,
             "checkpoint_freq": 1}
CASES: list[tuple[str, str, int, dict[str, Any]]] = [
    ("ppo", "CartPole-v1", 1024, {**ON_POLICY, "n_steps": 128}),
    ("props", "Pendulum-v1", 1024, {**ON_POLICY, "n_steps": 256, "behavior_steps": 128, "props_epochs": 2,
                                    "props_minibatches": 2}),
    # compiled steps: a fresh process compiles the same graph, whatever minibatch sizes it meets first
    ("props", "Pendulum-v1", 1024, {**ON_POLICY, "n_steps": 256, "behavior_steps": 128, "props_epochs": 2,
                                    "props_minibatches": 2, "compile": True}),
    # learning_starts=101 puts a logged update (a stop point for SAC's loop) exactly at N/2
    ("sac", "Pendulum-v1", 600, {"hidden_sizes": (32, 32), "learning_starts": 101, "batch_size": 32,
                                 "buffer_size": 1000, "log_freq": 50, "eval_freq": 100, "eval_episodes": 1,
                                 "checkpoint_freq": 100, "save_replay_buffer": True}),
]


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flatten(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list | tuple):
        return {k: v for i, sub in enumerate(tree) for k, v in flatten(sub, f"{prefix}[{i}]").items()}
    return {prefix: tree}


def assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    fa, fb = flatten(a), flatten(b)
    fa.pop("/run/metrics_bytes"), fb.pop("/run/metrics_bytes")  # the time fields' widths differ
    assert fa.keys() == fb.keys()
    for key, va in fa.items():
        vb = fb[key]
        if isinstance(va, torch.Tensor):
            assert torch.equal(va, vb), key
        else:
            assert va == vb, key


def metrics_without_time(run_dir: Path) -> list[dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time")} for row in rows]


def in_fresh_process(code: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize(("algo", "env_id", "total", "config"), CASES,
                         ids=[c[0] + ("-compiled" if c[3].get("compile") else "") for c in CASES])
def test_split_run_in_fresh_process_is_bit_identical(
    algo: str, env_id: str, total: int, config: dict[str, Any], tmp_path: Path
) -> None:
    if algo not in ALGORITHMS:
        pytest.skip(f"{algo} is not registered in ALGORITHMS")
    agent_cls = ALGORITHMS[algo]
    whole = agent_cls(env_id, seed=3, **config).learn(total, run_dir=tmp_path / "whole", progress=False)
    # first half, under the full run's LR schedule; then a new interpreter continues it
    agent_cls(env_id, seed=3, **config).learn(total // 2, run_dir=tmp_path / "split", progress=False,
                                              horizon=total)
    assert not (tmp_path / "split" / "summary.json").exists()  # a pause, not a finished run
    in_fresh_process(
        "from hybridpg.algorithms.base import Agent\n"
        "agent = Agent.load('split')\n"
        f"assert agent.env_state_exact and agent.horizon == {total}\n"
        f"agent.learn({total - total // 2}, reset=False, progress=False)\n",
        cwd=tmp_path,
    )
    resumed = Agent.load(tmp_path / "split")
    assert resumed.global_step == whole.global_step == total
    assert_same_state(whole.state_dict(), resumed.state_dict())
    whole_metrics = metrics_without_time(tmp_path / "whole")
    assert any("eval/return_mean" in row for row in whole_metrics)
    assert metrics_without_time(tmp_path / "split") == whole_metrics
    assert json.loads((tmp_path / "split" / "summary.json").read_text())["status"] == "finished"


@pytest.mark.parametrize(
    ("env_id", "num_envs", "async_envs"),
    [("CartPole-v1", 2, False), ("Pendulum-v1", 1, False), ("Hopper-v5", 2, False),
     ("hybridpg/CombinationLock-v0", 2, False), ("CartPole-v1", 2, True)],
)
def test_vec_env_state_round_trip_continues_identically(env_id: str, num_envs: int, async_envs: bool) -> None:
    source = VecEnv(env_id, num_envs, async_envs, seed=5)
    space = source.single_action_space
    space.seed(0)
    actions = [np.stack([space.sample() for _ in range(num_envs)]) for _ in range(300)]
    for a in actions[:120]:
        source.step(a)
    saved = source.state_dict()
    expected = [source.step(a) for a in actions[120:]]
    target = VecEnv(env_id, num_envs, async_envs, seed=99)  # different seed: only the restore can align it
    try:
        assert target.load_state_dict(saved) is True
        np.testing.assert_array_equal(target.obs, saved["obs"].numpy())
        got = [target.step(a) for a in actions[120:]]
    finally:
        source.close()
        target.close()
    assert sum(len(r.finished_returns) for r in expected) >= 1  # episodes ended after the restore
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_array_equal(e.obs, g.obs)
        np.testing.assert_array_equal(e.rewards, g.rewards)
        np.testing.assert_array_equal(e.terminated, g.terminated)
        assert e.finished_returns == g.finished_returns and e.finished_lengths == g.finished_lengths


class DriftEnv(gym.Env[np.ndarray, np.ndarray]):
    """An env outside the covered families: resume works but is announced as not bit-exact."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.x = self.np_random.normal(size=2)
        self.t = 0
        return self.x.copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.x = self.x + float(action[0])
        self.t += 1
        return self.x.copy(), -float(np.abs(self.x).sum()), False, self.t >= 50, {}


def test_uncovered_env_resumes_with_a_warning(tmp_path: Path) -> None:
    agent = ALGORITHMS["ppo"](DriftEnv, seed=0, n_steps=64, n_minibatches=2, n_epochs=1,
                              eval_freq=0, checkpoint_freq=1)
    agent.learn(128, run_dir=tmp_path, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # loading alone (for inference, say) does not warn
        loaded = Agent.load(tmp_path / "checkpoints" / "latest.pt", env=DriftEnv)
    assert loaded.env_state_exact is False
    assert loaded.global_step == 128
    with pytest.warns(UserWarning, match="not bit-exact"):
        loaded.learn(64, reset=False, progress=False)  # still trains
    assert loaded.global_step == 192


def test_learn_rejects_a_horizon_shorter_than_the_call() -> None:
    agent = ALGORITHMS["ppo"]("CartPole-v1", n_steps=64, n_minibatches=2)
    with warnings.catch_warnings(), pytest.raises(ValueError, match="horizon"):
        agent.learn(128, horizon=64)
