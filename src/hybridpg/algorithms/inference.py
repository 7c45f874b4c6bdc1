"""A trained policy for inference: what acting needs (normalizer, actor, action space) and nothing else.

``TrainedPolicy`` is built from a checkpoint without the training envs, the offline dataset, the
critics or the optimizers (``Agent.load_policy``); an agent's own ``predict`` goes through one too,
so the two give the same actions. ``save`` writes a small policy file that ``load_policy`` reads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hybridpg.data.normalizers import ObsNormalizer
from hybridpg.envs.vector import VecEnv
from hybridpg.errors import CheckpointError
from hybridpg.training.checkpoint import FORMAT_VERSION, save_checkpoint

#: an algorithm's actions for already-normalized observations: act(obs, deterministic)
ActFn = Callable[[torch.Tensor, bool], torch.Tensor]
POLICY_KIND = "policy"  # the "kind" of a policy file; agent checkpoints have none


class TrainedPolicy:
    def __init__(
        self,
        act: ActFn,
        obs_norm: ObsNormalizer,
        action_space: gym.Space[Any],
        obs_shape: tuple[int, ...],
        record: dict[str, Any] | None = None,
        config: Any = None,
    ) -> None:
        self.act = act
        self.config = config  # the saved config (a loaded policy): evaluation reads its env_kwargs
        self.obs_norm = obs_norm
        self.action_space = action_space
        self.obs_shape = obs_shape
        # algo, env_id, config and the actor's tensors: what save() writes (None for a live agent's view)
        self.record = record

    @property
    def algo(self) -> str:
        return str(self.record["algo"]) if self.record else ""

    @property
    def env_id(self) -> str:
        return str(self.record["env_id"]) if self.record else ""

    @property
    def env_spec(self) -> str:
        return self.env_id

    def predict(
        self,
        obs: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """``(action, state)`` for raw observation(s), as Stable-Baselines3's ``predict`` returns;
        observations are normalized with the saved statistics. The policies have no recurrent
        state: ``state`` comes back unchanged and ``episode_start`` is ignored."""
        del episode_start
        return self.actions(obs, deterministic), state

    def actions(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        single = obs.shape == self.obs_shape
        batch = obs.reshape(1, -1) if single else obs.reshape(obs.shape[0], -1)
        with torch.no_grad():
            t = torch.as_tensor(self.obs_norm(batch), dtype=torch.float32)
            actions = self.act(t, deterministic).numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        else:
            actions = actions.astype(np.int64)
        return actions[0] if single else actions

    def save(self, path: str | Path) -> None:
        """A policy file: the actor, the normalizer and the spaces (no critics, optimizers or buffers)."""
        if self.record is None:
            raise CheckpointError("this policy is a live agent's view; save the agent, or load_policy its checkpoint")
        save_checkpoint(path, {
            "format_version": FORMAT_VERSION,
            "kind": POLICY_KIND,
            **self.record,
            "obs_norm": self.obs_norm.state_dict(),
            "spaces": {"observation_shape": list(self.obs_shape), "action_space": space_record(self.action_space)},
        })


def space_record(space: gym.Space[Any]) -> dict[str, Any]:
    """The action space as plain data, bounds included (acting clips to them)."""
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "dtype": str(space.dtype), "low": torch.from_numpy(np.asarray(space.low, np.float64)),
                "high": torch.from_numpy(np.asarray(space.high, np.float64))}
    raise CheckpointError(f"no record for action space {space}")


def space_from_record(record: dict[str, Any]) -> gym.Space[Any]:
    try:
        if record["type"] == "Discrete":
            return gym.spaces.Discrete(int(record["n"]), start=int(record["start"]))
        if record["type"] == "Box":
            low, high = np.asarray(record["low"].numpy()), np.asarray(record["high"].numpy())
            dtype = np.dtype(str(record["dtype"]))
            return gym.spaces.Box(low.astype(dtype), high.astype(dtype), dtype=dtype)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"the checkpoint's action space record is damaged: {exc}") from None
    raise CheckpointError(f"the checkpoint's action space record has unknown type {record.get('type')!r}")


def policy_from_state(state: dict[str, Any], agent_cls: Any, env: Any, path: str | Path) -> TrainedPolicy:
    """The policy in a loaded checkpoint or policy file, built by ``agent_cls``'s ``_inference_act``."""
    try:
        saved = dict(state["config"])
        if env is not None and not isinstance(env, str):
            saved["env_kwargs"] = {}  # an Env instance or factory given here is used as it is
        config = agent_cls.config_cls.from_saved(saved)
        spaces = state.get("spaces") or {}
        env_spec = env if env is not None else state["env_id"]
        if "action_space" in spaces:
            action_space = space_from_record(spaces["action_space"])
            obs_shape = tuple(int(d) for d in spaces["observation_shape"])
        else:  # written before the spaces were stored in full: read them from the env
            probe = VecEnv(env_spec, 1, False, seed=0, env_kwargs=config.env_kwargs)
            action_space, obs_shape = probe.single_action_space, tuple(probe.obs_shape)
            probe.close()
        obs_norm = ObsNormalizer(obs_shape)
        obs_norm.load_state_dict(state["obs_norm"])
        algo_state = {k: state["algo_state"][k] for k in agent_cls.inference_keys}
        act = agent_cls._inference_act(config, int(np.prod(obs_shape)), action_space, algo_state, env_spec)
    except (KeyError, RuntimeError, ValueError, TypeError) as exc:
        detail = " ".join(str(exc).split())
        raise CheckpointError(f"{path} does not hold a usable {state['algo']} policy: {detail}") from None
    record = {"algo": state["algo"], "env_id": state["env_id"], "seed": state.get("seed", 0),
              "config": config.to_dict(), "algo_state": algo_state}
    return TrainedPolicy(act, obs_norm, action_space, obs_shape, record, config)
