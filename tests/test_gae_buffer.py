"""GAE against hand-computed cases, and the FIFO history buffer."""

import numpy as np
import pytest

from hybridpg.data.rollout import HistoryBuffer, compute_gae


def reference_gae(r, v, nv, term, trunc, gamma, lam):
    adv = np.zeros(len(r))
    last = 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * nv[t] * (1 - term[t]) - v[t]
        last = delta + gamma * lam * (1 - (term[t] or trunc[t])) * last
        adv[t] = last
    return adv


def col(x, dtype=float):
    return np.asarray(x, dtype=dtype).reshape(-1, 1)


def test_gae_hand_case_with_termination():
    # three steps, terminal at t=1, then one step of a new episode
    r, v, nv = [1.0, 2.0, 3.0], [0.5, 1.0, 0.2], [1.0, 9.0, 0.4]
    term, trunc = [False, True, False], [False, False, False]
    g, lam = 0.9, 0.8
    adv = compute_gae(col(r), col(v), col(nv), col(term, bool), col(trunc, bool), g, lam)[:, 0]
    d2 = 3.0 + 0.9 * 0.4 - 0.2  # bootstraps from the next value (buffer end, not done)
    d1 = 2.0 - 1.0  # terminal: next value 9.0 is ignored
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    expected = [d0 + 0.9 * 0.8 * d1, d1, d2]  # nothing flows back across the episode end
    np.testing.assert_allclose(adv, expected)


def test_gae_truncation_bootstraps_from_final_observation_value():
    r, v = [1.0, 1.0], [0.0, 0.0]
    nv = [0.0, 5.0]  # V(true final obs) = 5 at the time-limit step
    adv_trunc = compute_gae(col(r), col(v), col(nv), col([False, False], bool), col([False, True], bool), 0.99, 0.95)
    adv_term = compute_gae(col(r), col(v), col(nv), col([False, True], bool), col([False, False], bool), 0.99, 0.95)
    assert adv_trunc[1, 0] == pytest.approx(1.0 + 0.99 * 5.0)
    assert adv_term[1, 0] == pytest.approx(1.0)


def test_gae_matches_reference_on_random_data_single_and_vector():
    rng = np.random.default_rng(0)
    for envs in (1, 3):
        t = 200
        r, v, nv = rng.normal(size=(t, envs)), rng.normal(size=(t, envs)), rng.normal(size=(t, envs))
        term, trunc = rng.random((t, envs)) < 0.05, rng.random((t, envs)) < 0.05
        adv = compute_gae(r, v, nv, term, trunc, 0.99, 0.95)
        for e in range(envs):
            np.testing.assert_allclose(
                adv[:, e], reference_gae(r[:, e], v[:, e], nv[:, e], term[:, e], trunc[:, e], 0.99, 0.95)
            )


def test_history_buffer_is_fifo_and_keeps_time_order():
    buf = HistoryBuffer(steps=4, num_envs=2, obs_shape=(1,), action_shape=())
    for i in range(6):
        o = np.full((2, 1), i, dtype=float)
        buf.add(o, np.array([i, i]), np.array([i, -i], dtype=float), np.zeros(2, bool), np.zeros(2, bool), o + 0.5)
    assert buf.full and buf.size == 4
    idx = buf.time_order()
    np.testing.assert_array_equal(buf.obs[idx][:, 0, 0], [2, 3, 4, 5])  # oldest two were evicted
    np.testing.assert_array_equal(buf.rewards[idx][:, 1], [-2, -3, -4, -5])
    np.testing.assert_array_equal(buf.obs[buf.time_order(skip_oldest=1)][:, 0, 0], [3, 4, 5])
    state = buf.state_dict()
    other = HistoryBuffer(steps=4, num_envs=2, obs_shape=(1,), action_shape=())
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.obs[other.time_order()], buf.obs[idx])
