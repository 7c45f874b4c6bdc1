"""Environments: construction, the vector env, and the library's registered benchmark tasks."""

from hybridpg.envs.vector import EnvSpec, StepResult, VecEnv, env_failure, env_name, make_env_fn

__all__ = ["EnvSpec", "StepResult", "VecEnv", "env_failure", "env_name", "make_env_fn"]

# make the library's own tasks (hybridpg/TwoStep-v0, the combination lock, ...) available to gym.make
from hybridpg.envs.registry import register_envs as _register_envs  # noqa: E402

_register_envs()
