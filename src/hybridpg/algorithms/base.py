"""What every algorithm shares: construction, seeding, predict/save/load, and the run around learn().

An algorithm subclasses ``Agent``, builds its networks in ``_build`` and implements
``_train(run, total_timesteps)``: its loop returns when ``run.safe_point()`` (called at the top of
every iteration) says so, and calls ``run.on_episodes`` and ``run.after_update``. Every algorithm
derives from ``Agent`` directly; PPO, PPO-Buffer, PROPS and ROS also take in ``OnPolicyAgent``
(their shared loop and update, a mixin) and differ only in their config class, which picks the
behavior policy. Everything stateful is reachable from ``state_dict``; the run machinery
(``training/``) sees an agent only as a ``Learner``.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from hybridpg.algorithms.checks import check_device, from_np_state, np_state, schedule_start, space_signature, to_tuple
from hybridpg.algorithms.inference import POLICY_KIND, ActFn, TrainedPolicy, policy_from_state, space_record
from hybridpg.config import BaseConfig, coerce_field
from hybridpg.data.normalizers import ObsNormalizer
from hybridpg.envs.vector import EnvSpec, VecEnv, env_name
from hybridpg.errors import CheckpointError, ConfigError, EnvError
from hybridpg.training.checkpoint import FORMAT_VERSION, load_checkpoint, save_checkpoint
from hybridpg.training.learner import RunRecord
from hybridpg.training.run import Run, StopRun, TrainingInterrupted, stop_on_signals

# what Stable-Baselines3 takes as its first argument; here the env comes first
SB3_POLICY_NAMES = frozenset({"MlpPolicy", "CnnPolicy", "MultiInputPolicy"})


class Agent:
    config_cls: ClassVar[type[BaseConfig]] = BaseConfig

    def __init__(
        self,
        env: EnvSpec,
        seed: int = 0,
        config: BaseConfig | None = None,
        **overrides: Any,
    ) -> None:
        schedule = overrides.pop("learning_rate") if callable(overrides.get("learning_rate")) else None
        if schedule is not None:
            overrides["learning_rate"] = schedule_start(schedule, type(self).__name__, self.lr_schedules)
        if isinstance(env, str) and env in SB3_POLICY_NAMES:
            raise ConfigError(
                f"{type(self).__name__}({env!r}, env): hybridpg builds its own networks: "
                f"use {type(self).__name__}(env, hidden_sizes=...)"
            )
        if config is None:
            config = self.config_cls.from_dict(overrides)
        elif overrides:
            coerced = {k: coerce_field(self.config_cls, k, v) for k, v in overrides.items()}
            values = {**config.to_dict(), **coerced}
            config = self.config_cls.from_dict(values)
        if not isinstance(config, self.config_cls):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_cls.__name__}, got {type(config).__name__}")
        self.config = config
        # SB3's habit: a callable of the remaining budget fraction (1 -> 0) instead of a number
        self.lr_schedule: Callable[[float], float] | None = schedule
        self._schedule_needed = False  # after load: the run followed a callable schedule
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**32:
            raise ConfigError(f"seed={seed!r}: must be an integer in [0, 2**32) (NumPy's seed range)")
        self.seed = int(seed)
        self.env_spec = env
        self.env_id = env_name(env)
        self.device = check_device(config.device)
        torch.set_num_threads(config.torch_threads)
        # one RNG stream per purpose, all seeded from the run seed, all saved in checkpoints
        random.seed(self.seed)
        np.random.seed(self.seed % 2**32)
        torch.manual_seed(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.torch_rng = torch.Generator().manual_seed(self.seed)
        self.vec = VecEnv(env, config.num_envs, config.async_envs, seed=self.seed, env_kwargs=config.env_kwargs)
        self.observation_space = self.vec.single_observation_space
        self.action_space = self.vec.single_action_space
        if config.box_only and not isinstance(self.action_space, gym.spaces.Box):
            self.vec.close()
            raise EnvError(f"{config.algo} needs a Box action space, but {self.env_id} has {self.action_space}")
        if not isinstance(self.action_space, gym.spaces.Box | gym.spaces.Discrete):
            self.vec.close()
            raise EnvError(f"unsupported action space {self.action_space} in {self.env_id}")
        obs_space = self.observation_space
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1
                or isinstance(obs_space, gym.spaces.Discrete)):
            self.vec.close()
            # images and nested spaces would reach the MLPs unflattened and fail mid-run
            raise EnvError(f"unsupported observation space {obs_space} in {self.env_id}: the networks take a 1-D Box "
                           "or a Discrete observation; flatten others first (gymnasium.wrappers.FlattenObservation)")
        self.obs_dim = int(np.prod(self.vec.obs_shape))
        self.obs_norm = ObsNormalizer(self.vec.obs_shape, enabled=bool(getattr(config, "norm_obs", False)))
        self.global_step = 0
        self.updates = 0
        self.run_dir: Path | None = None
        # the step count the LR schedule anneals over; kept across save/load so a resumed run
        # continues the original schedule instead of starting a new one
        self.horizon: int | None = None
        self.env_state_exact: bool | None = None  # after load: was the env state restored exactly?
        self.record = RunRecord()  # the run's own state (logs, evaluations), saved with the agent
        self._inexact_resume: str | None = None  # after load: why continuing will not be bit-exact
        self._build()
        # acting goes through the same object a loaded policy file gives (load_policy)
        self.inference = TrainedPolicy(self._act, self.obs_norm, self.action_space, self.vec.obs_shape)

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

    #: whether ``learning_rate`` may be a schedule (a callable of the remaining budget fraction)
    lr_schedules: ClassVar[bool] = False

    #: the entries of ``_algo_state`` that acting needs (what a policy file keeps)
    inference_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _inference_act(
        cls, config: Any, obs_dim: int, action_space: gym.Space[Any], algo_state: dict[str, Any], env: EnvSpec
    ) -> ActFn:
        """The actor rebuilt from ``algo_state`` alone (``load_policy``), acting like ``_act``."""
        raise CheckpointError(f"{config.algo} has no inference-only policy")

    def _load_algo_state(self, state: dict[str, Any]) -> None:
        del state

    # -- public API ---------------------------------------------------------------------------------
    def learn(
        self,
        total_timesteps: int,
        run_dir: str | Path | None = None,
        progress: bool | None = None,
        reset: bool = True,
        horizon: int | None = None,
        callback: Any = None,
    ) -> Agent:
        """Train for ``total_timesteps`` env steps; with ``reset=False`` continue the step count.

        ``horizon`` is the step count the learning-rate schedule anneals over (default: the end of
        this call, or a resumed run's original horizon if that is later). Training only part of a
        horizon and continuing later (``Agent.load(run).learn(rest, reset=False)``) gives the same
        result as one uninterrupted call. With a ``run_dir``, SIGINT/SIGTERM write a checkpoint
        and raise ``TrainingInterrupted``, and the best evaluated policy is kept in
        ``checkpoints/best.pt``. ``callback``: a function of one ``CallbackEvent`` or an object
        with ``on_rollout_end``/``on_update``/``on_eval`` hooks (``hybridpg.training.callbacks``);
        a hook returning False stops training, and the run finishes with its checkpoints.
        """
        from hybridpg.training.callbacks import as_callback

        hooks = as_callback(callback)
        target = self.prepare_learn(total_timesteps, run_dir, reset, horizon)
        run = Run(self, self.horizon or 0, self.run_dir, progress, stop_at=target, callback=hooks)
        self._drive(run, train=True)
        return self

    def prepare_learn(self, total_timesteps: int, run_dir: str | Path | None, reset: bool, horizon: int | None) -> int:
        """``learn``'s checks and bookkeeping before its run starts; returns the step it trains to."""
        if not reset and self._inexact_resume is not None:
            warnings.warn(
                f"resuming {self.env_id}: {self._inexact_resume}; training continues but is not bit-exact", stacklevel=2
            )
            self._inexact_resume = None
        if total_timesteps < 1:
            raise ConfigError(f"total_timesteps={total_timesteps}: must be >= 1")
        if not reset and self._schedule_needed and self.lr_schedule is None:
            raise ConfigError(f"this {self.config.algo} run's learning rate followed a Python callable, which a "
                              "checkpoint cannot hold; continue it from Python with "
                              f"{type(self).__name__}.load(run, learning_rate=schedule)")
        if reset and self.global_step:
            raise ConfigError("this agent has already trained; pass reset=False to continue it")
        target = total_timesteps if reset else self.global_step + total_timesteps
        default = target if reset else max(target, self.horizon or 0)
        if horizon is not None and horizon < target:
            raise ConfigError(f"horizon={horizon}: must be >= the steps this call trains to ({target})")
        self.horizon = horizon if horizon is not None else default
        if run_dir is not None:
            self.run_dir = Path(run_dir)
        return target

    def finish_run(self, run_dir: str | Path, progress: bool | None = None) -> Agent:
        """Complete a run whose training is done but whose final evaluation and summary.json are
        missing (it stopped after its last checkpoint): evaluate, write final.pt and summary.json."""
        self.run_dir = Path(run_dir)
        self.horizon = max(self.horizon or 0, self.global_step)
        run = Run(self, self.horizon, self.run_dir, progress, stop_at=self.global_step)
        self._drive(run, train=False)
        return self

    def _drive(self, run: Run, train: bool) -> None:
        """Train (optionally) and finish under the signal handlers; a signal checkpoints and raises
        ``TrainingInterrupted``, also during the final evaluation."""
        try:
            with stop_on_signals(run):
                try:
                    if train:
                        if self.global_step == 0 and (self.config.eval_freq or self.config.eval_every):
                            # the untrained policy: the 0% point of every learning curve
                            run.logger.log(0, run.evaluate())
                        self._train(run, self.horizon or 0)
                except StopRun:
                    pass
                if run.stop_signal is None:
                    with contextlib.suppress(StopRun):  # a signal during the final evaluation
                        run.finish()
                if run.stop_signal is not None and not run.finished:
                    assert self.run_dir is not None
                    # the loop returned or the final evaluation was cut short: both are loop boundaries
                    run.save_for_stop()
                    raise TrainingInterrupted(run.stop_signal, self.global_step, self.run_dir)
        finally:
            run.close()

    def predict(
        self,
        obs: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``(action, state)``; the same object a loaded policy file gives (``TrainedPolicy.predict``)."""
        return self.inference.predict(obs, state, episode_start, deterministic)

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
                "numpy_global": np_state(tuple(np.random.get_state())),
                "numpy": self.np_rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "torch_gen": self.torch_rng.get_state(),
            },
            "algo_state": self._algo_state(),
            "spaces": {
                "observation": space_signature(self.observation_space),
                "action": space_signature(self.action_space),
                "observation_shape": list(self.vec.obs_shape),
                "action_space": space_record(self.action_space),
            },
            "env_state": self.vec.state_dict(),
            "run": {"horizon": self.horizon, "lr_schedule": self.lr_schedule is not None or self._schedule_needed,
                    **self.record.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        spaces = state.get("spaces")
        if spaces is not None:
            ours = {
                "observation": space_signature(self.observation_space),
                "action": space_signature(self.action_space),
            }
            for key in ("observation", "action"):
                if spaces[key] != ours[key]:
                    raise CheckpointError(
                        f"checkpoint was trained with {key} space {spaces[key]}, but {self.env_id} has {ours[key]}"
                    )
        try:
            self.global_step = int(state["global_step"])
            self.updates = int(state["updates"])
            self.obs_norm.load_state_dict(state["obs_norm"])
            rng = state["rng"]
            random.setstate(to_tuple(rng["python"]))
            np.random.set_state(from_np_state(rng["numpy_global"]))
            self.np_rng.bit_generator.state = rng["numpy"]
            torch.set_rng_state(rng["torch"])
            self.torch_rng.set_state(rng["torch_gen"])
            self._load_algo_state(state["algo_state"])
            run_info = state.get("run") or {}
            self.horizon = run_info.get("horizon")
            self.record.load_state_dict(run_info)
            self._schedule_needed = bool(run_info.get("lr_schedule", False))
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            detail = " ".join(str(exc).split())  # torch's size-mismatch report spans lines; errors are one
            raise CheckpointError(f"checkpoint does not match this {self.config.algo} agent: {detail}") from None
        self.env_state_exact = self._load_env_state(state)

    def _load_env_state(self, state: dict[str, Any]) -> bool:
        """Continue the saved episodes when the envs are the saved ones; else keep fresh episodes."""
        saved = state.get("env_state")
        reason = None
        if saved is None:
            reason = "the checkpoint holds no env state"
        elif state.get("env_id") != self.env_id or len(saved["envs"]) != self.vec.num_envs:
            reason = "the env or num_envs differs from the checkpoint's"
        else:
            try:
                if self.vec.load_state_dict(saved):
                    return True
                reason = f"{self.env_id} is not an env whose state hybridpg captures completely"
            except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
                # a partly restored env is worse than a fresh one: start clean episodes
                self.vec.reset(self.seed + self.global_step)
                reason = f"its env state could not be restored ({exc})"
        # said when training continues (learn with reset=False), not on a load for inference
        self._inexact_resume = reason if saved is not None else None
        return False

    def save(self, path: str | Path) -> None:
        save_checkpoint(path, self.state_dict())

    @classmethod
    def load(cls, path: str | Path, env: EnvSpec | None = None, **overrides: Any) -> Agent:
        """Rebuild an agent from a checkpoint file or run folder (``env`` defaults to the saved id)."""
        state = load_checkpoint(path, expect_algo=None)
        if state.get("kind") == POLICY_KIND:
            raise CheckpointError(f"{path} is a policy file (inference only, no training state); "
                                  "load it with hybridpg.load_policy")
        agent_cls = cls if cls.config_cls.algo == state["algo"] else _agent_class(state["algo"], cls)
        saved = dict(state["config"])
        if env is not None and not isinstance(env, str) and "env_kwargs" not in overrides:
            saved["env_kwargs"] = {}  # an Env instance or factory given here is used as it is
        config = agent_cls.config_cls.from_saved(saved)
        # a schedule (callable) goes to the constructor: a config holds only numbers
        schedule = {"learning_rate": overrides.pop("learning_rate")} if callable(overrides.get("learning_rate")) else {}
        if overrides:
            config = agent_cls.config_cls.from_dict({**config.to_dict(), **overrides})
        agent = agent_cls(env if env is not None else state["env_id"], seed=int(state["seed"]), config=config,
                          **schedule)
        agent.load_state_dict(state)
        p = Path(path)
        if p.is_dir():
            agent.run_dir = p
        # a checkpoint inside RUN/checkpoints/ belongs to RUN: resuming there trims metrics.jsonl
        agent.record.loaded_from = p if p.is_dir() else p.parent.parent
        return agent

    @classmethod
    def load_policy(cls, path: str | Path, env: EnvSpec | None = None) -> TrainedPolicy:
        """The policy of a checkpoint, run folder or policy file, for ``predict``: no training envs,
        offline dataset, critics or optimizers are built. ``env`` is needed only by policies that
        read the env (finite-horizon HNPG) and by checkpoints that predate stored action bounds."""
        state = load_checkpoint(path, expect_algo=None)
        agent_cls = cls if cls.config_cls.algo == state["algo"] else _agent_class(state["algo"], cls)
        return policy_from_state(state, agent_cls, env, path)

    def restart_in(self, run_dir: str | Path) -> None:
        """Make the next ``learn`` start over in an existing run folder (one stopped before its
        first checkpoint), dropping that folder's old metrics."""
        self.record.metrics_bytes = 0
        self.record.loaded_from = Path(run_dir)

    def close(self) -> None:
        self.vec.close()


def _agent_class(algo: str, fallback: type[Agent]) -> type[Agent]:
    # every algorithm is a subclass defined in hybridpg.algorithms, which importing this module loads
    classes: list[type[Agent]] = list(Agent.__subclasses__())
    known: dict[str, type[Agent]] = {}
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        known.setdefault(cls.config_cls.algo, cls)
    if algo not in known:
        raise CheckpointError(f"checkpoint is for unknown algorithm '{algo}'")
    if fallback is not Agent and fallback.config_cls.algo != algo:
        raise CheckpointError(f"checkpoint is a '{algo}' checkpoint, not '{fallback.config_cls.algo}'")
    return known[algo]
