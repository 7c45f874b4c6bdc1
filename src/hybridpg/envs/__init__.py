"""Environments: construction, the vector env, and the library's registered benchmark tasks."""

from hybridpg.envs.vector import EnvSpec, StepResult, VecEnv, env_name, make_env_fn

__all__ = ["EnvSpec", "StepResult", "VecEnv", "env_name", "make_env_fn"]
