"""hybridpg export: the policy as plain tensors + JSON, rebuilt by hand with torch only."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from hybridpg import PPO, PROPS, Agent
from hybridpg.cli import main
from hybridpg.training.checkpoint import load_checkpoint, save_checkpoint

SMALL = {"n_steps": 128, "n_minibatches": 2, "n_epochs": 1, "eval_freq": 0, "eval_episodes": 1, "hidden_sizes": (16, 8)}


def _rebuild(folder: Path) -> tuple[dict, nn.Sequential, dict[str, torch.Tensor]]:
    """What a user without hybridpg would write: read the JSON, build the MLP, load the tensors."""
    meta = json.loads((folder / "policy.json").read_text())
    tensors = torch.load(folder / meta["weights"], weights_only=True)
    layers: list[nn.Module] = []
    for i, layer in enumerate(meta["layers"]):
        linear = nn.Linear(layer["in"], layer["out"])
        linear.weight.data = tensors[f"{layer['name']}.weight"]
        linear.bias.data = tensors[f"{layer['name']}.bias"]
        layers.append(linear)
        if i < len(meta["layers"]) - 1:
            assert meta["activation"] == "tanh"
            layers.append(nn.Tanh())
    return meta, nn.Sequential(*layers), tensors


def _act(meta: dict, net: nn.Sequential, tensors: dict[str, torch.Tensor], obs: np.ndarray) -> np.ndarray:
    x = torch.as_tensor(obs, dtype=torch.float64)
    if meta["obs_norm"]["enabled"]:
        clip, eps = meta["obs_norm"]["clip"], meta["obs_norm"]["eps"]
        x = ((x - tensors["obs_mean"]) / torch.sqrt(tensors["obs_var"] + eps)).clamp(-clip, clip)
    with torch.no_grad():
        out = net(x.float())
    if meta["action"]["type"] == "discrete":
        return out.argmax(-1).numpy()
    low, high = np.array(meta["action"]["low"]), np.array(meta["action"]["high"])
    return np.clip(out.numpy(), low, high)


@pytest.mark.parametrize("cls, env_id", [(PPO, "CartPole-v1"), (PROPS, "Pendulum-v1")])
def test_exported_policy_acts_like_predict(tmp_path: Path, cls: type[Agent], env_id: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    extra = {"behavior_steps": 64} if cls is PROPS else {}
    agent = cls(env_id, seed=0, **SMALL, **extra)
    agent.learn(512, run_dir=run, progress=False)
    assert main(["export", str(run)]) == 0
    out = run / "export"
    assert capsys.readouterr().out.strip() == f"wrote {out / 'policy.pt'} and {out / 'policy.json'}"
    meta, net, tensors = _rebuild(run / "export")
    assert [layer["out"] for layer in meta["layers"]][:2] == [16, 8] and meta["env_id"] == env_id
    env = agent.vec.envs[0]
    obs = np.stack([env.observation_space.sample() * 0.5 for _ in range(64)]).astype(np.float64)
    expected, _ = agent.predict(obs, deterministic=True)
    assert np.array_equal(_act(meta, net, tensors, obs), expected)
    if meta["action"]["type"] == "box":
        assert meta["action"]["low"] == [-2.0] and meta["action"]["high"] == [2.0]
    agent.close()


def test_export_to_another_folder_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    PPO("CartPole-v1", seed=0, **SMALL).learn(128, run_dir=run, progress=False)
    assert main(["export", str(run / "checkpoints" / "latest.pt"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "policy.json").is_file() and (tmp_path / "out" / "policy.pt").is_file()
    capsys.readouterr()
    try:
        import safetensors  # noqa: F401
    except ImportError:
        assert main(["export", str(run), "--format", "safetensors"]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            "error: hybridpg export: --format safetensors needs the safetensors package (pip install safetensors)"
        ]
    # every algorithm exports (tests/test_export_offpolicy.py); a checkpoint of an unknown one is refused
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    save_checkpoint(tmp_path / "other.pt", {**state, "algo": "other"})
    assert main(["export", str(tmp_path / "other.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export supports ppo, ppo-buffer, props, ros, sac, hnpg policies" in err[0]


def test_loading_for_inference_does_not_warn(tmp_path: Path) -> None:
    run = tmp_path / "run"
    PPO("CartPole-v1", seed=0, **SMALL).learn(128, run_dir=run, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = Agent.load(run, env=lambda: gym.make("CartPole-v1"))  # not the saved envs: their state is not restored
    agent.predict(np.zeros(4))
    agent.close()
