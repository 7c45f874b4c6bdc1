"""Tests for the paper's toy environments: Discrete2D100 and TwoStep."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from hybridpg.envs.registry import DISCRETE_2D100_ID, TWO_STEP_ID, register_envs

register_envs()

# check_env warns about this when it is given the wrapped env on purpose; anything else is a finding.
_EXPECTED_WRAPPED_WARNING = "different from the unwrapped version"


@pytest.mark.parametrize("env_id", [DISCRETE_2D100_ID, TWO_STEP_ID])
def test_check_env_passes_without_warnings(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        check_env(env)
    messages = [str(w.message) for w in caught if _EXPECTED_WRAPPED_WARNING not in str(w.message)]
    assert messages == []


def test_register_envs_is_idempotent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register_envs()
    assert gym.spec(DISCRETE_2D100_ID).max_episode_steps == 50


# ---------------------------------------------------------------- TwoStep


@pytest.mark.parametrize(
    ("first", "second", "mid_state", "final_reward"),
    [(0, 0, 1, 2.0), (0, 1, 1, 0.5), (1, 0, 2, 1.0), (1, 1, 2, 1.0)],
)
def test_two_step_every_path(first: int, second: int, mid_state: int, final_reward: float) -> None:
    env = gym.make(TWO_STEP_ID)
    obs, info = env.reset(seed=0)
    np.testing.assert_array_equal(obs, np.array([1, 0, 0], dtype=np.float32))
    assert obs.dtype == np.float32
    assert info["state"] == 0

    obs, reward, terminated, truncated, info = env.step(first)
    expected_mid = np.zeros(3, dtype=np.float32)
    expected_mid[mid_state] = 1.0
    np.testing.assert_array_equal(obs, expected_mid)
    assert (reward, terminated, truncated, info["state"]) == (0.0, False, False, mid_state)

    obs, reward, terminated, truncated, _ = env.step(second)
    np.testing.assert_array_equal(obs, np.zeros(3, dtype=np.float32))
    assert (reward, terminated, truncated) == (final_reward, True, False)


def test_two_step_rejects_bad_use() -> None:
    env = gym.make(TWO_STEP_ID).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(2)
    env.step(0)
    env.step(0)
    with pytest.raises(RuntimeError):
        env.step(0)


# ---------------------------------------------------------------- Discrete2D100


def _start(
    env: gym.Env[np.ndarray, np.int64], position: tuple[float, float], goal: tuple[float, float]
) -> None:
    obs, info = env.reset(seed=0, options={"position": position, "goal": goal})
    np.testing.assert_allclose(obs, np.array([*position, *goal], dtype=np.float32))
    assert info["distance"] == pytest.approx(math.dist(position, goal))


def test_discrete2d_spaces() -> None:
    env = gym.make(DISCRETE_2D100_ID)
    assert env.action_space == gym.spaces.Discrete(100)
    assert env.observation_space.shape == (4,)
    assert env.observation_space.dtype == np.float32


@pytest.mark.parametrize("action", [0, 25, 50, 99])
def test_discrete2d_move_and_reward(action: int) -> None:
    env = gym.make(DISCRETE_2D100_ID)
    _start(env, (0.0, 0.0), (0.5, 0.5))
    angle = 2 * math.pi * action / 99
    expected = (0.05 * math.cos(angle), 0.05 * math.sin(angle))
    obs, reward, terminated, truncated, _ = env.step(action)
    np.testing.assert_allclose(obs[:2], expected, atol=1e-7)
    np.testing.assert_allclose(obs[2:], [0.5, 0.5])
    assert reward == pytest.approx(-math.dist(expected, (0.5, 0.5)))
    assert not terminated and not truncated


def test_discrete2d_action_zero_moves_plus_x() -> None:
    env = gym.make(DISCRETE_2D100_ID)
    _start(env, (0.2, -0.3), (0.9, 0.9))
    obs, reward, *_ = env.step(0)
    np.testing.assert_allclose(obs[:2], [0.25, -0.3], atol=1e-7)
    assert reward == pytest.approx(-math.dist((0.25, -0.3), (0.9, 0.9)))


def test_discrete2d_position_is_clipped() -> None:
    env = gym.make(DISCRETE_2D100_ID)
    _start(env, (1.0, 0.0), (-1.0, 0.0))
    obs, reward, *_ = env.step(0)
    np.testing.assert_allclose(obs[:2], [1.0, 0.0])
    assert reward == pytest.approx(-2.0)


def test_discrete2d_terminates_near_goal() -> None:
    env = gym.make(DISCRETE_2D100_ID)
    _start(env, (0.0, 0.0), (0.06, 0.0))
    obs, reward, terminated, truncated, info = env.step(0)
    assert terminated and not truncated
    assert reward == pytest.approx(-0.01)
    assert info["distance"] == pytest.approx(0.01)


def test_discrete2d_does_not_terminate_outside_radius() -> None:
    env = gym.make(DISCRETE_2D100_ID)
    _start(env, (0.0, 0.0), (0.11, 0.0))
    _, reward, terminated, _, _ = env.step(0)
    assert reward == pytest.approx(-0.06)
    assert not terminated


def test_discrete2d_truncates_at_50_steps() -> None:
    env = gym.make(DISCRETE_2D100_ID)
    # Action 50 heads almost exactly in -x, so from the corner the agent stays pinned far away.
    _start(env, (-1.0, -1.0), (1.0, 1.0))
    for t in range(1, 51):
        _, _, terminated, truncated, _ = env.step(50)
        assert not terminated
        assert truncated == (t == 50)


def test_discrete2d_reset_samples_in_square_and_outside_goal() -> None:
    env = gym.make(DISCRETE_2D100_ID)
    starts = []
    for seed in range(300):
        obs, info = env.reset(seed=seed)
        assert env.observation_space.contains(obs)
        assert info["distance"] >= 0.05
        starts.append(obs)
    # Uniform in [-1, 1]: every coordinate spreads over (nearly) the whole range.
    stacked = np.stack(starts)
    assert np.all(stacked.min(axis=0) < -0.9) and np.all(stacked.max(axis=0) > 0.9)


def test_discrete2d_seeded_determinism() -> None:
    def rollout(seed: int) -> list[tuple[np.ndarray, float, bool, bool]]:
        env = gym.make(DISCRETE_2D100_ID)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        steps = [(obs, 0.0, False, False)]
        for _ in range(20):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            steps.append((obs, float(reward), terminated, truncated))
            if terminated or truncated:
                break
        return steps

    first, again, other = rollout(3), rollout(3), rollout(4)
    assert len(first) == len(again)
    for (o1, r1, te1, tr1), (o2, r2, te2, tr2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, te1, tr1) == (r2, te2, tr2)
    assert not np.array_equal(first[0][0], other[0][0])
