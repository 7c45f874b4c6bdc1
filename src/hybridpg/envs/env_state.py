"""Capturing and restoring the dynamic state of an env (for exact resume), as checkpoint-safe data."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

# -- per-env state capture ---------------------------------------------------------------------------
# Env families whose whole dynamic state lives in plain attributes (plus MuJoCo's physics, handled
# separately); for anything else the capture is best effort and resume is not promised bit-exact.
EXACT_ENV_MODULES = ("gymnasium.envs.classic_control", "gymnasium.envs.mujoco", "hybridpg.envs")


def _encode(value: Any) -> dict[str, Any] | None:
    """A checkpoint-safe (tensors and builtins only) form of one attribute, or None to skip it."""
    # numpy scalars first: np.float64 is also a float, but only builtins pass the safe loader
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            return None
        return {"t": "np", "v": value.item(), "dtype": str(value.dtype)}
    if value is None or isinstance(value, bool | int | float | str):
        return {"t": "py", "v": value}
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"t": "nd", "v": torch.from_numpy(value.astype(value.dtype.newbyteorder("="), copy=True)),
                "dtype": str(value.dtype)}
    if isinstance(value, np.random.Generator):
        return {"t": "rng", "v": value.bit_generator.state}
    if isinstance(value, tuple | list) and all(
        v is None or (isinstance(v, bool | int | float) and not isinstance(v, np.generic)) for v in value
    ):
        return {"t": "seq", "v": list(value), "tuple": isinstance(value, tuple)}
    return None


def _decode(item: dict[str, Any], current: Any) -> Any:
    kind = item["t"]
    if kind == "nd":
        return item["v"].numpy().astype(np.dtype(item["dtype"])).copy()
    if kind == "np":
        return np.dtype(item["dtype"]).type(item["v"])
    if kind == "rng":
        rng = current if isinstance(current, np.random.Generator) else np.random.default_rng()
        rng.bit_generator.state = item["v"]
        return rng
    if kind == "seq":
        return tuple(item["v"]) if item["tuple"] else list(item["v"])
    return item["v"]


def _layers(env: gym.Env) -> list[Any]:
    out: list[Any] = [env]
    while isinstance(out[-1], gym.Wrapper):
        out.append(out[-1].env)
    return out


def _mujoco_data(env: Any) -> tuple[Any, Any] | None:
    model, data = getattr(env, "model", None), getattr(env, "data", None)
    if model is None or data is None or type(data).__name__ != "MjData":
        return None
    return model, data


def capture_env_state(env: gym.Env) -> dict[str, Any]:
    """Plain attributes of every wrapper layer and the base env (TimeLimit's step count,
    CartPole's ``state``, the env's ``np_random``), the action space's RNG, and MuJoCo's full
    integration state (qpos, qvel, act, warm start, controls, time)."""
    layers = []
    for layer in _layers(env):
        attrs = {}
        for name, value in vars(layer).items():
            encoded = _encode(value)
            if encoded is not None:
                attrs[name] = encoded
        layers.append(attrs)
    base = env.unwrapped
    state: dict[str, Any] = {
        "layers": layers,
        "action_space_rng": env.action_space.np_random.bit_generator.state,
        "exact": type(base).__module__.startswith(EXACT_ENV_MODULES),
    }
    md = _mujoco_data(base)
    if md is not None:
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        physics = np.empty(mujoco.mj_stateSize(md[0], spec))
        mujoco.mj_getState(md[0], md[1], physics, spec)
        state["mujoco"] = torch.from_numpy(physics)
    return state


def restore_env_state(env: gym.Env, state: dict[str, Any]) -> bool:
    """Inverse of ``capture_env_state`` on an env built from the same id; returns ``state['exact']``."""
    layers = _layers(env)
    if len(layers) != len(state["layers"]):
        raise ValueError(f"env has {len(layers)} wrapper layers, the saved state has {len(state['layers'])}")
    for layer, attrs in zip(layers, state["layers"], strict=True):
        for name, item in attrs.items():
            setattr(layer, name, _decode(item, getattr(layer, name, None)))
    env.action_space.np_random.bit_generator.state = state["action_space_rng"]
    md = _mujoco_data(env.unwrapped)
    if md is not None and "mujoco" in state:
        import mujoco

        mujoco.mj_setState(md[0], md[1], state["mujoco"].numpy().copy(), mujoco.mjtState.mjSTATE_INTEGRATION)
        mujoco.mj_forward(md[0], md[1])  # derived quantities (contacts, sensors) from the restored state
    return bool(state["exact"])


class _StateAccess(gym.Wrapper):  # type: ignore[type-arg]
    """Outermost wrapper of async workers' envs so the parent can get/set their state by attribute."""

    @property
    def hybridpg_state(self) -> dict[str, Any]:
        return capture_env_state(self.env)

    @hybridpg_state.setter
    def hybridpg_state(self, state: dict[str, Any]) -> None:
        restore_env_state(self.env, state)

    @property
    def hybridpg_space_seed(self) -> int | None:
        return getattr(self, "_hybridpg_space_seed", None)

    @hybridpg_space_seed.setter
    def hybridpg_space_seed(self, seed: int | None) -> None:
        self._hybridpg_space_seed = seed
        _seed_spaces(self.env, seed)


def _seed_spaces(env: gym.Env, seed: int | None) -> None:
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
