"""hybridpg export of SAC's actor and HNPG's policies (one head, and one per step with finite_horizon):
rebuilt from policy.json and policy.pt with plain torch, they act like load_policy(run).predict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import hybridpg
from hybridpg import HNPG, SAC, Agent
from hybridpg.cli import main
from hybridpg.data.datasets import collect_episodes, write_dataset
from hybridpg.envs.lock import LockOptimalPolicy

LOCK = "hybridpg/CombinationLock-v0"


@pytest.fixture(autouse=True)
def quiet_threads(one_thread: None) -> None:
    del one_thread


def _net(meta: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str = "") -> nn.Sequential:
    """The MLP a user without hybridpg writes from policy.json: Linear layers, the activation between."""
    activation = {"tanh": nn.Tanh, "relu": nn.ReLU}[meta["activation"]]
    layers: list[nn.Module] = []
    for i, layer in enumerate(meta["layers"]):
        linear = nn.Linear(layer["in"], layer["out"])
        linear.weight.data = tensors[f"{prefix}{layer['name']}.weight"]
        linear.bias.data = tensors[f"{prefix}{layer['name']}.bias"]
        layers += [linear, activation()] if i < len(meta["layers"]) - 1 else [linear]
    return nn.Sequential(*layers)


def _load(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    meta = json.loads((folder / "policy.json").read_text())
    return meta, torch.load(folder / meta["weights"], weights_only=True)


def _normalized(meta: dict[str, Any], tensors: dict[str, torch.Tensor], obs: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(obs, dtype=torch.float64)
    if meta["obs_norm"]["enabled"]:
        clip, eps = meta["obs_norm"]["clip"], meta["obs_norm"]["eps"]
        x = ((x - tensors["obs_mean"]) / torch.sqrt(tensors["obs_var"] + eps)).clamp(-clip, clip)
    return x.float()


def _export(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    assert main(["export", str(run)]) == 0
    assert capsys.readouterr().out.startswith("wrote ")
    return _load(run / "export")


def test_sac_actor_acts_like_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "sac"
    agent = SAC("Pendulum-v1", seed=0, learning_starts=64, batch_size=32, eval_freq=0, hidden_sizes=(16, 8))
    agent.learn(300, run_dir=run, progress=False)
    agent.close()
    meta, tensors = _export(run, capsys)
    assert meta["algo"] == "sac" and meta["activation"] == "relu"
    assert [(layer["in"], layer["out"]) for layer in meta["layers"]] == [(3, 16), (16, 8), (8, 2)]
    assert meta["action"]["low"] == [-2.0] and meta["action"]["high"] == [2.0]
    net = _net(meta, tensors)
    obs = np.stack([gym.spaces.Box(-1.0, 1.0, (3,)).sample() * 8 for _ in range(64)]).astype(np.float64)
    with torch.no_grad():
        out = net(_normalized(meta, tensors, obs))
    mean = out[:, : out.shape[1] // 2]
    low, high = np.array(meta["action"]["low"]), np.array(meta["action"]["high"])
    squashed = torch.tanh(mean).numpy()
    actions = np.clip(squashed * ((high - low) / 2) + (high + low) / 2, low, high)
    # SAC has no inference-only policy yet (load_policy refuses it): the loaded agent's predict
    loaded = Agent.load(run)
    expected = loaded.predict(obs)[0]
    loaded.close()
    np.testing.assert_allclose(actions, expected, rtol=0, atol=1e-6)  # fused vs plain matmuls: float32 rounding
    # the stated formula, low + (a + 1) / 2 * (high - low), is the same map
    np.testing.assert_allclose(low + (squashed + 1) / 2 * (high - low), expected, rtol=0, atol=1e-6)


def test_hnpg_policy_acts_like_predict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = gym.make("Pendulum-v1")
    records = collect_episodes(env, lambda obs: env.action_space.sample(), 2, seed=0)
    write_dataset("pend-v0", records, env.spec, env.observation_space, env.action_space, root=tmp_path)
    run = tmp_path / "hnpg"
    agent = HNPG("Pendulum-v1", seed=0, offline_dataset="pend-v0", offline_root=str(tmp_path), n_steps=200,
                 offline_batch=100, eval_freq=0, policy_hidden_sizes=(16,), hidden_sizes=(16,))
    agent.learn(400, run_dir=run, progress=False)
    agent.close()
    meta, tensors = _export(run, capsys)
    assert meta["algo"] == "hnpg" and "heads" not in meta and meta["activation"] == "tanh"
    obs = np.stack([env.observation_space.sample() for _ in range(64)]).astype(np.float64)
    with torch.no_grad():
        mean = _net(meta, tensors)(_normalized(meta, tensors, obs)).numpy()
    actions = np.clip(mean, meta["action"]["low"], meta["action"]["high"])
    np.testing.assert_array_equal(actions, hybridpg.load_policy(run).predict(obs)[0])
    env.close()


def test_finite_horizon_hnpg_exports_one_head_per_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    horizon = 3
    env = gym.make(LOCK, horizon=horizon)
    policy: Any = LockOptimalPolicy(env, epsilon=1.0 / horizon, seed=0)
    write_dataset("lock-v0", collect_episodes(env, policy, 30, seed=0), env.spec, env.observation_space,
                  env.action_space, root=tmp_path)
    run = tmp_path / "hnpg-lock"
    agent = HNPG(LOCK, seed=0, offline_dataset="lock-v0", offline_root=str(tmp_path), finite_horizon=True,
                 horizon=horizon, env_kwargs={"horizon": horizon}, n_steps=60, offline_batch=60, eval_freq=0,
                 policy_hidden_sizes=(16,), hidden_sizes=(16,))
    agent.learn(180, run_dir=run, progress=False)
    agent.close()
    meta, tensors = _export(run, capsys)
    assert meta["heads"]["count"] == horizon and "episode step" in meta["heads"]["choice"]
    assert {k.split(".")[1] for k in tensors if k.startswith("heads.")} == {"0", "1", "2"}
    heads = [_net(meta, tensors, f"heads.{h}.") for h in range(horizon)]
    loaded = hybridpg.load_policy(run)
    for seed in range(4):  # every step of a few episodes: head h acts at step h
        obs, _ = env.reset(seed=seed)
        for h in range(horizon):
            with torch.no_grad():
                logits = heads[h](_normalized(meta, tensors, obs[None]))
            action = int(logits.argmax(-1)[0])
            assert action == int(loaded.predict(obs)[0]), (seed, h)
            obs, *_ = env.step(env.action_space.sample())
    env.close()
