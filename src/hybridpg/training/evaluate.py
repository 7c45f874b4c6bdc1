"""Deterministic evaluation of a trained agent, with the agent's saved normalization statistics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from hybridpg.envs.vector import env_failure, make_env_fn
from hybridpg.errors import HybridPGError
from hybridpg.training.learner import Actor


class EvaluationStopped(Exception):
    """``evaluate``'s ``stop`` callback asked it to end early (a signal during a final evaluation)."""


@dataclass(frozen=True)
class EvalResult:
    returns: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))


def evaluate(
    agent: Actor,
    env: gym.Env | str | None = None,
    n_episodes: int = 10,
    seed: int = 0,
    deterministic: bool = True,
    stop: Callable[[], bool] | None = None,
) -> EvalResult:
    """Run ``n_episodes`` full episodes; statistics are read, never updated. ``stop`` is polled
    every env step; when it returns True the evaluation raises ``EvaluationStopped``."""
    own = env is None or isinstance(env, str)
    if env is None:  # the agent's own env, rebuilt with its env_kwargs
        the_env = make_env_fn(agent.env_spec, **agent.config.env_kwargs)()
    else:  # another id is built as given
        the_env = make_env_fn(env)() if isinstance(env, str) else env
    assert isinstance(the_env, gym.Env)
    returns: list[float] = []
    lengths: list[int] = []
    try:
        for i in range(n_episodes):
            try:
                obs, _ = the_env.reset(seed=seed + i)
            except Exception as exc:
                raise _env_error(agent, env, "failed in evaluation (reset)", exc) from None
            done, total, length = False, 0.0, 0
            while not done:
                if stop is not None and stop():
                    raise EvaluationStopped
                action, _ = agent.predict(obs, deterministic=deterministic)
                try:  # a plain try on the step loop: no context-manager call per step
                    obs, reward, terminated, truncated, _ = the_env.step(action)
                    total += float(reward)
                except Exception as exc:
                    raise _env_error(agent, env, "failed in evaluation (step)", exc) from None
                length += 1
                done = bool(terminated or truncated)
            returns.append(total)
            lengths.append(length)
    finally:
        if own:
            the_env.close()
    return EvalResult(returns, lengths)


def _env_error(agent: Actor, env: gym.Env | str | None, what: str, exc: Exception) -> Exception:
    """An exception raised inside the evaluation env as one error line naming the env (ours pass as they are)."""
    if isinstance(exc, HybridPGError):
        return exc
    return env_failure(env if env is not None else agent.env_spec, agent.config.env_kwargs if env is None else None,
                       what, exc)
