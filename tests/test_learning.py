"""Learning tests: the algorithms reach good returns on small budgets."""

import pytest

from hybridpg import PPO, PROPS, evaluate

CARTPOLE_FAST = dict(n_steps=512, n_minibatches=8, n_epochs=10, learning_rate=1e-3, eval_freq=0)


@pytest.mark.slow
def test_ppo_solves_cartpole():
    agent = PPO("CartPole-v1", seed=1, **CARTPOLE_FAST).learn(30_000, progress=False)
    result = evaluate(agent, "CartPole-v1", n_episodes=10, seed=100)
    agent.close()
    assert result.mean >= 475, result.returns


@pytest.mark.slow
def test_props_learns_cartpole():
    agent = PROPS("CartPole-v1", seed=1, behavior_steps=128, **CARTPOLE_FAST).learn(30_000, progress=False)
    result = evaluate(agent, "CartPole-v1", n_episodes=10, seed=100)
    agent.close()
    assert result.mean >= 300, result.returns
