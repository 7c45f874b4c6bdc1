"""What every algorithm shares: construction, seeding, predict/save/load, and the run around learn().

An algorithm subclasses ``Agent`` once (no deeper hierarchy), builds its networks in ``_build``,
and implements ``_train(run, total_timesteps)``, calling ``run.on_episodes`` and
``run.after_update`` from its loop. Everything stateful is reachable from ``state_dict``.
"""

from __future__ import annotations

import copy
import json
import random
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
import yaml

from hybridpg.config import BaseConfig, coerce_field
from hybridpg.data.normalizers import ObsNormalizer
from hybridpg.envs.vector import EnvSpec, VecEnv, env_name, make_env_fn
from hybridpg.errors import CheckpointError, ConfigError, EnvError
from hybridpg.training.checkpoint import FORMAT_VERSION, atomic_write_bytes, load_checkpoint, save_checkpoint
from hybridpg.training.logger import MetricLogger
from hybridpg.training.progress import ProgressBar


class Agent:
    config_cls: ClassVar[type[BaseConfig]] = BaseConfig

    def __init__(
        self,
        env: EnvSpec,
        seed: int = 0,
        config: BaseConfig | None = None,
        **overrides: Any,
    ) -> None:
        if config is None:
            config = self.config_cls.from_dict(overrides)
        elif overrides:
            values = {**config.to_dict(), **{k: coerce_field(self.config_cls, k, v) for k, v in overrides.items()}}
            config = self.config_cls.from_dict(values)
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config
        self.seed = int(seed)
        self.env_spec = env
        self.env_id = env_name(env)
        torch.set_num_threads(config.torch_threads)
        self.device = torch.device("cpu")
        # one RNG stream per purpose, all seeded from the run seed, all saved in checkpoints
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.torch_rng = torch.Generator().manual_seed(self.seed)
        self.vec = VecEnv(env, config.num_envs, config.async_envs, seed=self.seed)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        if config.box_only and not isinstance(self.action_space, gym.spaces.Box):
            self.vec.close()
            raise EnvError(f"{config.algo} needs a Box action space, but {self.env_id} has {self.action_space}")
        if not isinstance(self.action_space, gym.spaces.Box | gym.spaces.Discrete):
            self.vec.close()
            raise EnvError(f"unsupported action space {self.action_space} in {self.env_id}")
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.obs_norm = ObsNormalizer(self.vec.obs_shape, enabled=bool(getattr(config, "norm_obs", False)))
        self.global_step = 0
        self.updates = 0
        self.run_dir: Path | None = None
        self._build()

    # -- what each algorithm provides ---------------------------------------------------------------
    @abstractmethod
    def _build(self) -> None: ...

    @abstractmethod
    def _train(self, run: Run, total_timesteps: int) -> None: ...

    @abstractmethod
    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Actions for already-normalized observations (no grad)."""

    def _algo_state(self) -> dict[str, Any]:
        return {}

    def _load_algo_state(self, state: dict[str, Any]) -> None:
        del state

    # -- public API ---------------------------------------------------------------------------------
    def learn(
        self,
        total_timesteps: int,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        reset: bool = True,
    ) -> Agent:
        """Train until ``total_timesteps`` env steps; with ``reset=False`` continue the step count."""
        if total_timesteps < 1:
            raise ConfigError(f"total_timesteps={total_timesteps}: must be >= 1")
        if reset and self.global_step:
            raise ConfigError("this agent has already trained; pass reset=False to continue it")
        target = total_timesteps if reset else self.global_step + total_timesteps
        if run_dir is not None:
            self.run_dir = Path(run_dir)
        run = Run(self, target, self.run_dir, progress)
        try:
            self._train(run, target)
            run.finish()
        finally:
            run.close()
        return self

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Action(s) for raw observation(s), normalized with the agent's saved statistics."""
        obs = np.asarray(obs, dtype=np.float64)
        single = obs.shape == tuple(self.observation_space.shape)
        batch = obs.reshape(1, -1) if single else obs.reshape(obs.shape[0], -1)
        with torch.no_grad():
            t = torch.as_tensor(self.obs_norm(batch), dtype=torch.float32)
            actions = self._act(t, deterministic).numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        else:
            actions = actions.astype(np.int64)
        return actions[0] if single else actions

    def state_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "algo": self.config.algo,
            "env_id": self.env_id,
            "seed": self.seed,
            "config": self.config.to_dict(),
            "global_step": self.global_step,
            "updates": self.updates,
            "obs_norm": self.obs_norm.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy_global": _np_state(np.random.get_state()),
                "numpy": self.np_rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "torch_gen": self.torch_rng.get_state(),
            },
            "algo_state": self._algo_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        try:
            self.global_step = int(state["global_step"])
            self.updates = int(state["updates"])
            self.obs_norm.load_state_dict(state["obs_norm"])
            rng = state["rng"]
            random.setstate(_to_tuple(rng["python"]))
            np.random.set_state(_from_np_state(rng["numpy_global"]))
            self.np_rng.bit_generator.state = rng["numpy"]
            torch.set_rng_state(rng["torch"])
            self.torch_rng.set_state(rng["torch_gen"])
            self._load_algo_state(state["algo_state"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            raise CheckpointError(f"checkpoint does not match this {self.config.algo} agent: {exc}") from None

    def save(self, path: str | Path) -> None:
        save_checkpoint(path, self.state_dict())

    @classmethod
    def load(cls, path: str | Path, env: EnvSpec | None = None, **overrides: Any) -> Agent:
        """Rebuild an agent from a checkpoint file or run folder (``env`` defaults to the saved id)."""
        state = load_checkpoint(path, expect_algo=None)
        agent_cls = cls if cls.config_cls.algo == state["algo"] else _agent_class(state["algo"], cls)
        config = agent_cls.config_cls.from_dict({**state["config"], **overrides})
        agent = agent_cls(env if env is not None else state["env_id"], seed=int(state["seed"]), config=config)
        agent.load_state_dict(state)
        p = Path(path)
        if p.is_dir():
            agent.run_dir = p
        return agent

    def close(self) -> None:
        self.vec.close()


class Run:
    """Everything around the update math: logging, evaluation, checkpoints and progress."""

    def __init__(self, agent: Agent, total: int, run_dir: Path | None, progress: bool | None) -> None:
        self.agent = agent
        self.total = total
        self.run_dir = run_dir
        self.logger = MetricLogger(run_dir)
        self.progress = ProgressBar(total, enabled=progress)
        self.progress.start_step = agent.global_step
        self.latest_return: float | None = None
        self.start_time = time.perf_counter()
        self.start_step = agent.global_step
        self.last_log_time = self.start_time
        self.last_log_step = agent.global_step
        self.eval_env: gym.Env | None = None
        self.last_eval: dict[str, float] = {}
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            config_doc = {
                "algo": agent.config.algo,
                "env": agent.env_id,
                "seed": agent.seed,
                "total_timesteps": total,
                "config": agent.config.to_dict(),
            }
            atomic_write_bytes(run_dir / "config.yaml", yaml.safe_dump(config_doc, sort_keys=False).encode())

    def on_episodes(self, returns: list[float], lengths: list[int]) -> None:
        step = self.agent.global_step
        for r, n in zip(returns, lengths, strict=True):
            self.latest_return = r
            self.logger.log(step, {"charts/episode_return": r, "charts/episode_length": n})
        self.progress.update(step, self.latest_return)

    def after_update(self, metrics: dict[str, float]) -> None:
        agent = self.agent
        now = time.perf_counter()
        sps = (agent.global_step - self.last_log_step) / max(now - self.last_log_time, 1e-9)
        self.last_log_time, self.last_log_step = now, agent.global_step
        metrics = {**metrics, "time/sps": sps}
        cfg = agent.config
        if cfg.eval_freq and agent.updates % cfg.eval_freq == 0:
            metrics.update(self.evaluate())
        self.logger.log(agent.global_step, metrics)
        if self.run_dir is not None and cfg.checkpoint_freq and agent.updates % cfg.checkpoint_freq == 0:
            self.logger.flush()
            agent.save(self.run_dir / "checkpoints" / "latest.pt")

    def evaluate(self) -> dict[str, float]:
        from hybridpg.training.evaluate import evaluate

        if self.eval_env is None:
            self.eval_env = make_env_fn(self.agent.env_spec)() if not isinstance(
                self.agent.env_spec, gym.Env
            ) else copy.deepcopy(self.agent.env_spec)
        result = evaluate(self.agent, self.eval_env, self.agent.config.eval_episodes, seed=self.agent.seed + 10_000)
        self.last_eval = {"eval/return_mean": result.mean, "eval/return_std": result.std}
        return self.last_eval

    def finish(self) -> None:
        agent = self.agent
        if not self.last_eval or agent.config.eval_freq == 0 or agent.updates % agent.config.eval_freq:
            self.logger.log(agent.global_step, self.evaluate())
        wall = time.perf_counter() - self.start_time
        summary = {
            "status": "finished",
            "algo": agent.config.algo,
            "env": agent.env_id,
            "seed": agent.seed,
            "global_step": agent.global_step,
            "updates": agent.updates,
            "eval_return_mean": self.last_eval.get("eval/return_mean"),
            "sps": (agent.global_step - self.start_step) / max(wall, 1e-9),
            "wall_seconds": wall,
        }
        self.summary = summary
        if self.run_dir is not None:
            agent.save(self.run_dir / "checkpoints" / "final.pt")
            agent.save(self.run_dir / "checkpoints" / "latest.pt")
            atomic_write_bytes(self.run_dir / "summary.json", json.dumps(summary, indent=2).encode())
        self.progress.update(agent.global_step, self.latest_return, force=True)

    def close(self) -> None:
        self.progress.close()
        self.logger.close()
        if self.eval_env is not None:
            self.eval_env.close()


def _np_state(state: tuple[Any, ...]) -> tuple[Any, ...]:
    return (state[0], torch.from_numpy(np.asarray(state[1]).astype(np.int64)), *state[2:])


def _from_np_state(state: Any) -> tuple[Any, ...]:
    keys = state[1].numpy().astype(np.uint32)
    return (state[0], keys, *state[2:])


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_to_tuple(v) for v in value)
    return value


def _agent_class(algo: str, fallback: type[Agent]) -> type[Agent]:
    from hybridpg.algorithms import ALGORITHMS

    if algo not in ALGORITHMS:
        raise CheckpointError(f"checkpoint is for unknown algorithm '{algo}'")
    if fallback is not Agent and fallback.config_cls.algo != algo:
        raise CheckpointError(f"checkpoint is a '{algo}' checkpoint, not '{fallback.config_cls.algo}'")
    return ALGORITHMS[algo]
