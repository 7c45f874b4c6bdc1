"""Tests for the rich-observation combination lock (discrete and continuous actions)."""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import scipy.linalg
from gymnasium.utils.env_checker import check_env

from hybridpg.envs.lock import (
    LATENT_A,
    LATENT_B,
    LATENT_C,
    CombinationLockContinuousEnv,
    CombinationLockEnv,
    LockOptimalPolicy,
)
from hybridpg.envs.registry import COMBINATION_LOCK_CONTINUOUS_ID, COMBINATION_LOCK_ID, register_envs

register_envs()

LOCK_IDS = [COMBINATION_LOCK_ID, COMBINATION_LOCK_CONTINUOUS_ID]
# The observation noise is unbounded, so the observation Box is too; check_env warns about that.
_EXPECTED_WARNINGS = ("different from the unwrapped version", "infinity")


def _right(env: CombinationLockEnv, latent: int, h: int) -> int:
    code = env.right_code(latent, h)
    assert code is not None, "the dead state has no right code"
    return code


def _wrong_code(env: CombinationLockEnv, latent: int, h: int) -> int:
    right = env.right_code(latent, h)
    return (0 if right is None else right + 1) % 10


def _run_episode(env: gym.Env[Any, Any], policy: Any, seed: int) -> tuple[float, int, list[dict[str, Any]]]:
    obs, info = env.reset(seed=seed)
    infos = [info]
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total += float(reward)
        steps += 1
        infos.append(info)
        assert not truncated
        if terminated:
            return total, steps, infos


@pytest.mark.parametrize("env_id", LOCK_IDS)
def test_check_env_passes(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
        check_env(env)
    unexpected = [str(w.message) for w in caught if not any(e in str(w.message) for e in _EXPECTED_WARNINGS)]
    assert unexpected == []


@pytest.mark.parametrize(("horizon", "dim"), [(1, 8), (4, 8), (5, 16), (10, 16), (12, 16), (13, 32)])
def test_observation_dimension(horizon: int, dim: int) -> None:
    for env_id in LOCK_IDS:
        env = gym.make(env_id, horizon=horizon)
        assert env.observation_space.shape == (dim,)
        obs, _ = env.reset(seed=0)
        assert obs.shape == (dim,) and obs.dtype == np.float32


def test_action_spaces() -> None:
    assert gym.make(COMBINATION_LOCK_ID).action_space == gym.spaces.Discrete(10)
    space = gym.make(COMBINATION_LOCK_CONTINUOUS_ID).action_space
    assert isinstance(space, gym.spaces.Box) and space.shape == (10,)


def test_codes_are_fixed_by_code_seed_not_reset_seed() -> None:
    env = CombinationLockEnv(horizon=8, code_seed=5)
    opt_a, opt_b = env.opt_a, env.opt_b
    assert opt_a.shape == opt_b.shape == (8,)
    assert np.all((opt_a >= 0) & (opt_a < 10)) and np.all((opt_b >= 0) & (opt_b < 10))
    for seed in range(3):
        env.reset(seed=seed)
        np.testing.assert_array_equal(env.opt_a, opt_a)
        np.testing.assert_array_equal(env.opt_b, opt_b)
    same = CombinationLockContinuousEnv(horizon=8, code_seed=5)
    np.testing.assert_array_equal(same.opt_a, opt_a)
    np.testing.assert_array_equal(same.opt_b, opt_b)
    other = CombinationLockEnv(horizon=8, code_seed=6)
    assert not (np.array_equal(other.opt_a, opt_a) and np.array_equal(other.opt_b, opt_b))


@pytest.mark.parametrize("start", [LATENT_A, LATENT_B])
def test_right_code_keeps_good_and_wrong_code_kills(start: int) -> None:
    env = CombinationLockEnv(horizon=5)
    codes = env.opt_a if start == LATENT_A else env.opt_b
    _, info = env.reset(seed=0, options={"latent": start})
    assert (info["latent"], info["h"]) == (start, 0)
    _, reward, terminated, _, info = env.step(codes[0])
    assert info["latent"] in (LATENT_A, LATENT_B)
    assert (reward, terminated, info["h"]) == (0.0, False, 1)

    env.reset(seed=0, options={"latent": start})
    _, reward, terminated, _, info = env.step(_wrong_code(env, start, 0))
    assert info["latent"] == LATENT_C
    assert reward in (0.0, 0.1)
    assert reward == (0.1 if info["distractor"] else 0.0)
    assert not terminated


def test_codes_of_a_and_b_are_separate() -> None:
    # At a step where the two codes differ, the other good state's code leads to C.
    env = CombinationLockEnv(horizon=10)
    assert env.right_code(LATENT_C, 0) is None
    h = int(np.flatnonzero(env.opt_a != env.opt_b)[0])
    for seed in range(10):
        _, info = env.reset(seed=seed)
        for step in range(h):
            _, _, _, _, info = env.step(_right(env, info["latent"], step))
        other = LATENT_B if info["latent"] == LATENT_A else LATENT_A
        _, _, _, _, info = env.step(_right(env, other, h))
        assert info["latent"] == LATENT_C


def test_dead_state_is_absorbing_and_pays_nothing() -> None:
    env = CombinationLockEnv(horizon=5)
    for seed in range(20):
        env.reset(seed=seed, options={"latent": LATENT_C})
        for h in range(5):
            # Try A's code, B's code and another action: none leaves C or pays.
            action = [env.opt_a[h], env.opt_b[h], 7][seed % 3]
            _, reward, terminated, _, info = env.step(action)
            assert info["latent"] == LATENT_C
            assert reward == 0.0 and not info["distractor"]
            assert terminated == (h == 4)


def test_reward_one_only_for_right_code_at_last_step() -> None:
    env = CombinationLockEnv(horizon=3)
    for seed in range(20):
        _, info = env.reset(seed=seed)
        rewards = []
        for _ in range(3):
            _, reward, _, _, info_next = env.step(_right(env, info["latent"], info["h"]))
            rewards.append(reward)
            info = info_next
        assert rewards == [0.0, 0.0, 1.0]
        assert info["optimal_reward"] and info["latent"] in (LATENT_A, LATENT_B)

        # Same path but a wrong last code: no reward 1, only the distractor may pay.
        _, info = env.reset(seed=seed)
        for _ in range(2):
            _, _, _, _, info = env.step(_right(env, info["latent"], info["h"]))
        _, reward, terminated, _, info = env.step(_wrong_code(env, info["latent"], 2))
        assert terminated and reward in (0.0, 0.1)
        assert not info["optimal_reward"] and info["latent"] == LATENT_C


def test_transition_and_distractor_rates() -> None:
    env = CombinationLockEnv(horizon=5)
    n = 4000
    starts_a = distractors = next_a = 0
    for seed in range(n):
        _, info = env.reset(seed=seed)
        starts_a += info["latent"] == LATENT_A
        _, reward, _, _, wrong_info = env.step(_wrong_code(env, info["latent"], 0))
        distractors += reward == 0.1
        assert wrong_info["distractor"] == (reward == 0.1)
        env.reset(seed=seed + n, options={"latent": LATENT_A})
        _, _, _, _, right_info = env.step(env.opt_a[0])
        next_a += right_info["latent"] == LATENT_A
    # Each rate is 1/2; the standard error at n=4000 is 0.008, so 0.05 is > 6 standard errors.
    for count in (starts_a, distractors, next_a):
        assert abs(count / n - 0.5) < 0.05


def test_observation_is_hadamard_of_latent_encoding() -> None:
    horizon = 5
    d = 16
    hadamard = scipy.linalg.hadamard(d).astype(np.float64)
    assert set(np.unique(hadamard)) == {-1.0, 1.0}

    # Without noise the observation is exactly hadamard @ (onehot(latent) + onehot(3 + h)).
    clean = CombinationLockEnv(horizon=horizon, noise_std=0.0)
    _, info = clean.reset(seed=0, options={"latent": LATENT_B})
    for h in range(horizon):
        z = np.zeros(d)
        z[info["latent"]] = 1.0
        z[3 + h] = 1.0
        np.testing.assert_allclose(clean.observation_from_latent(info["latent"], h), hadamard @ z)
        obs, _, _, _, info = clean.step(0)
    z = np.zeros(d)
    z[info["latent"]] = 1.0
    z[3 + horizon] = 1.0
    np.testing.assert_allclose(obs, hadamard @ z)

    # With noise, inverting the Hadamard transform gives z plus N(0, 0.1^2) on z[0:H+3] only.
    noisy = CombinationLockEnv(horizon=horizon, noise_std=0.1)
    residuals = []
    for seed in range(400):
        obs, info = noisy.reset(seed=seed)
        z_hat = hadamard.T @ obs.astype(np.float64) / d
        z = np.zeros(d)
        z[info["latent"]] = 1.0
        z[3] = 1.0
        residuals.append(z_hat - z)
    res = np.stack(residuals)
    assert np.all(np.abs(res[:, horizon + 3 :]) < 1e-5)
    std = res[:, : horizon + 3].std(axis=0)
    assert np.all((std > 0.085) & (std < 0.115))
    assert np.all(np.abs(res[:, : horizon + 3].mean(axis=0)) < 0.02)


@pytest.mark.parametrize("horizon", [1, 5, 13])
def test_decode_observation_round_trip(horizon: int) -> None:
    env = CombinationLockEnv(horizon=horizon)
    env.reset(seed=0)
    noise_rng = np.random.default_rng(0)
    for latent in (LATENT_A, LATENT_B, LATENT_C):
        for h in range(horizon + 1):
            obs = env.observation_from_latent(latent, h, noise_rng.normal(0.0, 0.1, horizon + 3))
            assert env.decode_observation(obs) == (latent, h)


@pytest.mark.parametrize("env_id", LOCK_IDS)
def test_episodes_last_exactly_horizon_steps(env_id: str) -> None:
    for horizon in (1, 3, 7):
        env = gym.make(env_id, horizon=horizon)
        space = env.action_space
        space.seed(0)
        for seed in range(10):
            _, steps, infos = _run_episode(env, lambda _obs, space=space: space.sample(), seed)
            assert steps == horizon
            assert [i["h"] for i in infos] == list(range(horizon + 1))


def test_step_after_end_raises() -> None:
    env = CombinationLockEnv(horizon=2)
    env.reset(seed=0)
    env.step(0)
    env.step(0)
    with pytest.raises(RuntimeError):
        env.step(0)


def test_optimal_policy_discrete_always_opens_the_lock() -> None:
    env = gym.make(COMBINATION_LOCK_ID)
    policy = LockOptimalPolicy(env)
    for seed in range(100):
        total, steps, infos = _run_episode(env, policy, seed)
        assert (total, steps) == (1.0, 5)
        assert infos[-1]["optimal_reward"]


def test_optimal_policy_continuous_opens_the_lock() -> None:
    env = gym.make(COMBINATION_LOCK_CONTINUOUS_ID)
    policy = LockOptimalPolicy(env)
    action = policy(env.reset(seed=0)[0])
    assert env.action_space.contains(action)
    successes = sum(_run_episode(env, policy, seed)[0] == 1.0 for seed in range(100))
    assert successes >= 95


def test_optimal_policy_long_horizon() -> None:
    env = gym.make(COMBINATION_LOCK_ID, horizon=13)
    policy = LockOptimalPolicy(env)
    assert all(_run_episode(env, policy, seed)[0] == 1.0 for seed in range(50))


def test_epsilon_policy_explores() -> None:
    env = gym.make(COMBINATION_LOCK_ID)
    random_policy = LockOptimalPolicy(env, epsilon=1.0, seed=0)
    actions = {int(random_policy(env.reset(seed=0)[0])) for _ in range(200)}
    assert actions == set(range(10))
    # A uniform policy opens a 5-step lock with probability 1e-5; it should not here.
    assert sum(_run_episode(env, random_policy, seed)[0] == 1.0 for seed in range(100)) == 0

    cont = gym.make(COMBINATION_LOCK_CONTINUOUS_ID)
    cont_policy = LockOptimalPolicy(cont, epsilon=1.0, seed=0)
    for _ in range(20):
        assert cont.action_space.contains(cont_policy(cont.reset(seed=0)[0]))


def test_optimal_policy_rejects_other_envs() -> None:
    with pytest.raises(TypeError):
        LockOptimalPolicy(gym.make("CartPole-v1"))


def test_continuous_action_sampling() -> None:
    env = CombinationLockContinuousEnv(horizon=5)
    one_hot = np.full(10, -1.0, dtype=np.float32)
    one_hot[3] = 1.0
    assert env.code_probabilities(one_hot)[3] > 1 - 1e-6
    # Clipping to the box: an out-of-bounds action behaves like its clipped version.
    np.testing.assert_allclose(env.code_probabilities(one_hot * 50), env.code_probabilities(one_hot))
    np.testing.assert_allclose(env.code_probabilities(np.zeros(10)), np.full(10, 0.1))

    # A flat action gives uniformly random latent codes.
    env.reset(seed=0)
    counts = np.zeros(10)
    for seed in range(2000):
        env.reset(seed=seed)
        _, _, _, _, info = env.step(np.zeros(10, dtype=np.float32))
        counts[info["latent_action"]] += 1
    assert np.all(np.abs(counts / 2000 - 0.1) < 0.03)

    with pytest.raises(ValueError):
        env.step(np.full(10, np.nan, dtype=np.float32))
    with pytest.raises(ValueError):
        env.step(np.zeros(3, dtype=np.float32))


@pytest.mark.parametrize("env_id", LOCK_IDS)
def test_seeded_determinism(env_id: str) -> None:
    def rollout(seed: int) -> list[tuple[np.ndarray, float, dict[str, Any]]]:
        env = gym.make(env_id)
        env.action_space.seed(seed)
        obs, info = env.reset(seed=seed)
        steps = [(obs, 0.0, info)]
        terminated = False
        while not terminated:
            obs, reward, terminated, _, info = env.step(env.action_space.sample())
            steps.append((obs, float(reward), info))
        return steps

    first, again, other = rollout(11), rollout(11), rollout(12)
    for (o1, r1, i1), (o2, r2, i2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2 and i1 == i2
    assert not np.array_equal(first[0][0], other[0][0])


def test_invalid_constructor_arguments() -> None:
    from hybridpg.errors import ConfigError

    with pytest.raises(ConfigError):
        CombinationLockEnv(horizon=0)
    with pytest.raises(ConfigError):
        CombinationLockEnv(noise_std=-1.0)
    with pytest.raises(ConfigError):
        CombinationLockContinuousEnv(temperature=0.0)
    env = CombinationLockEnv()
    with pytest.raises(ValueError):
        env.reset(seed=0, options={"latent": 3})
