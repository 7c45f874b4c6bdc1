"""Stable-Baselines3 habits: predict returns (action, state), MlpPolicy hint, callbacks, best.pt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybridpg import PPO, SAC, Agent, evaluate
from hybridpg.errors import ConfigError
from hybridpg.training.callbacks import Callback, CallbackEvent
from hybridpg.training.logger import read_metrics

SMALL: dict[str, Any] = {"n_steps": 128, "n_minibatches": 2, "n_epochs": 1, "eval_freq": 1, "eval_episodes": 2,
                         "hidden_sizes": (16,)}


def test_predict_returns_action_and_state_like_sb3() -> None:
    agent = PPO("CartPole-v1", seed=0, **SMALL)
    obs, _ = agent.vec.envs[0].reset(seed=1)
    action, state = agent.predict(obs)
    assert np.ndim(action) == 0 and action in (0, 1) and state is None
    batch, state = agent.predict(np.stack([obs, obs]), state=("h",), episode_start=np.array([True, False]))
    assert batch.shape == (2,) and state == ("h",)  # no recurrent state: handed back unchanged
    agent.close()


@pytest.mark.parametrize("cls, name", [(PPO, "MlpPolicy"), (SAC, "MultiInputPolicy")])
def test_a_policy_name_first_gets_a_one_line_hint(cls: type[Agent], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        cls(name, "CartPole-v1")  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    assert f"hybridpg builds its own networks: use {cls.__name__}(env, hidden_sizes=...)" in message


def test_callback_function_sees_rollouts_updates_and_evaluations(tmp_path: Path) -> None:
    events: list[CallbackEvent] = []
    agent = PPO("CartPole-v1", seed=0, **SMALL)
    agent.learn(512, run_dir=tmp_path / "run", progress=False, callback=events.append)
    kinds = [e.kind for e in events]
    assert kinds.count("rollout_end") == 4 and kinds.count("update") == 4
    # one evaluation before training and one after each update
    evals = [e for e in events if e.kind == "eval"]
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    logged = [r["eval/return_mean"] for r in rows if "eval/return_mean" in r]
    assert [e.eval_return for e in evals] == logged and len(evals) == 5
    updates = [e for e in events if e.kind == "update"]
    assert [e.updates for e in updates] == [1, 2, 3, 4] and "losses/policy_loss" in updates[0].metrics
    # each update comes after the rollout it learned from
    assert kinds.index("rollout_end") < kinds.index("update")


def test_a_hook_returning_false_stops_training_with_a_checkpoint(tmp_path: Path) -> None:
    class StopAfterTwo(Callback):
        def on_update(self, event: CallbackEvent) -> bool:
            return event.updates < 2

    run = tmp_path / "run"
    agent = PPO("CartPole-v1", seed=0, **SMALL)
    agent.learn(2048, run_dir=run, progress=False, callback=StopAfterTwo())
    assert agent.global_step == 256 and agent.updates == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["global_step"] == 256
    loaded = Agent.load(run / "checkpoints" / "latest.pt")
    assert loaded.global_step == 256
    loaded.close()


def test_an_object_with_only_some_hooks_works(tmp_path: Path) -> None:
    class EvalWatcher:  # no base class, one hook
        def __init__(self) -> None:
            self.returns: list[float] = []

        def on_eval(self, event: CallbackEvent) -> bool | None:
            assert event.eval_return is not None
            self.returns.append(event.eval_return)
            return False if len(self.returns) >= 2 else None

    watcher = EvalWatcher()
    agent = PPO("CartPole-v1", seed=0, **SMALL)
    agent.learn(1024, run_dir=tmp_path / "run", progress=False, callback=watcher)
    # initial, after update 1; that state was just evaluated, so the run's end adds none
    assert agent.updates == 1 and len(watcher.returns) == 2
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "stopped"


def test_a_callback_that_is_neither_is_refused() -> None:
    agent = PPO("CartPole-v1", seed=0, **SMALL)
    with pytest.raises(ConfigError, match="callback=42"):
        agent.learn(256, callback=42)
    agent.close()


def test_best_policy_by_eval_return_is_kept_in_best_pt(tmp_path: Path) -> None:
    run = tmp_path / "run"
    agent = PPO("CartPole-v1", seed=0, **SMALL)
    agent.learn(1024, run_dir=run, progress=False)
    logged = [r["eval/return_mean"] for r in read_metrics(run / "metrics.jsonl") if "eval/return_mean" in r]
    best = Agent.load(run / "checkpoints" / "best.pt")
    # the evaluation that made it best, repeated: same eval env seed, same episodes
    again = evaluate(best, "CartPole-v1", n_episodes=2, seed=10_000)
    assert again.mean == max(logged)
    best.close()


def _policy_bytes(agent: Any) -> bytes:
    return b"".join(v.numpy().tobytes() for v in agent.policy.state_dict().values())


def test_a_learning_rate_schedule_is_called_with_the_remaining_fraction(tmp_path: Path) -> None:
    import hybridpg

    seen: list[float] = []

    def linear(remaining: float) -> float:
        seen.append(remaining)
        return remaining * 3e-4

    small = {"n_steps": 128, "n_minibatches": 2, "eval_freq": 0}
    scheduled = hybridpg.PPO("CartPole-v1", seed=4, learning_rate=linear, anneal_lr=False, **small)
    scheduled.learn(512, run_dir=tmp_path / "run", progress=False)
    annealed = hybridpg.PPO("CartPole-v1", seed=4, learning_rate=3e-4, anneal_lr=True, **small)
    annealed.learn(512, progress=False)
    assert seen[0] == 1.0 and seen[1:] == sorted(seen[1:], reverse=True) and len(seen) == 1 + 4
    # SB3's linear schedule is the annealing PPO already does: the same weights, bit for bit
    assert _policy_bytes(scheduled) == _policy_bytes(annealed)
    constant = hybridpg.PPO("CartPole-v1", seed=4, learning_rate=lambda _: 3e-4, anneal_lr=False, **small)
    constant.learn(512, progress=False)
    assert _policy_bytes(constant) != _policy_bytes(annealed)
    # a checkpoint cannot hold the function: continuing needs it again, and gets it through load
    with pytest.raises(ConfigError, match="callable"):
        hybridpg.PPO.load(tmp_path / "run").learn(128, reset=False)
    again = hybridpg.PPO.load(tmp_path / "run", learning_rate=linear)
    again.learn(128, reset=False, progress=False)
    for agent in (scheduled, annealed, constant, again):
        agent.close()


def test_a_schedule_where_none_is_supported_or_a_bad_one_is_one_config_error() -> None:
    import hybridpg

    with pytest.raises(ConfigError, match="SAC takes a number for learning_rate") as info:
        hybridpg.SAC("Pendulum-v1", learning_rate=lambda f: 1e-3)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="failed at 1.0"):
        hybridpg.PPO("CartPole-v1", learning_rate=lambda f: 1 / 0)
    with pytest.raises(ConfigError, match="must be a number > 0"):
        hybridpg.PPO("CartPole-v1", learning_rate=lambda f: -1.0)


@pytest.mark.parametrize("budget", [3000, 30_000])
def test_eval_every_evaluates_at_fractions_of_any_budget(budget: int, tmp_path: Path) -> None:
    import hybridpg

    n = 256 if budget == 3000 else 2048
    agent = hybridpg.PPO("CartPole-v1", seed=0, n_steps=n, n_minibatches=4, n_epochs=1, eval_every=0.25,
                         eval_episodes=1)
    agent.learn(budget, run_dir=tmp_path / "run", progress=False)
    agent.close()
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "eval/return_mean" in r]
    # step 0, then the first update past each quarter of the budget, then the end
    assert steps[0] == 0 and steps[-1] >= budget
    quarters = [int(s // (0.25 * budget)) for s in steps]
    assert quarters == sorted(set(quarters)) and len(steps) >= 5, steps
    assert all(s - q * 0.25 * budget < n for s, q in zip(steps[1:-1], quarters[1:-1], strict=True))


def test_eval_every_reaches_sac_before_its_first_update(tmp_path: Path) -> None:
    import hybridpg

    agent = hybridpg.SAC("Pendulum-v1", seed=0, learning_starts=2000, batch_size=32, hidden_sizes=(16, 16),
                         log_freq=500, eval_every=0.1, eval_episodes=1)
    agent.learn(4000, run_dir=tmp_path / "run", progress=False)
    agent.close()
    steps = [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "eval/return_mean" in r]
    # every 10% of the budget, also while the replay buffer fills (no updates yet)
    assert [s for s in steps if s < 2000] == [0, 400, 800, 1200, 1600], steps
