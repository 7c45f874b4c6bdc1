"""Same seed + same config -> identical training, for a single env and for sync vector envs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from hybridpg.algorithms import ALGORITHMS

SMALL: dict[str, Any] = {"hidden_sizes": (16, 16), "n_epochs": 2, "n_minibatches": 4, "eval_freq": 2,
                         "eval_episodes": 2, "checkpoint_freq": 0}
CASES = [
    ("ppo", "CartPole-v1", {**SMALL, "num_envs": 1, "n_steps": 128}),
    ("ppo", "CartPole-v1", {**SMALL, "num_envs": 4, "n_steps": 128}),
    ("props", "Pendulum-v1", {**SMALL, "num_envs": 2, "n_steps": 128, "behavior_steps": 64, "props_epochs": 2,
                              "props_minibatches": 2}),
]


def train(algo: str, env_id: str, config: dict[str, Any], seed: int, run_dir: Path) -> tuple[dict, list]:
    agent = ALGORITHMS[algo](env_id, seed=seed, **config)
    agent.learn(768, run_dir=run_dir, progress=False)
    agent.close()
    params = {k: v.clone() for k, v in agent.state_dict()["algo_state"]["policy"].items()}
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return params, [{k: v for k, v in r.items() if not k.startswith("time")} for r in rows]


@pytest.mark.parametrize(("algo", "env_id", "config"), CASES, ids=["ppo-1env", "ppo-4envs", "props-2envs"])
def test_same_seed_same_result(algo: str, env_id: str, config: dict[str, Any], tmp_path: Path) -> None:
    p1, m1 = train(algo, env_id, config, 11, tmp_path / "a")
    p2, m2 = train(algo, env_id, config, 11, tmp_path / "b")
    p3, m3 = train(algo, env_id, config, 12, tmp_path / "c")
    assert p1.keys() == p2.keys()
    assert all(torch.equal(p1[k], p2[k]) for k in p1)
    assert m1 == m2 and any("charts/episode_return" in r for r in m1)
    # the seed matters: another seed gives other parameters and other episodes
    assert not all(torch.equal(p1[k], p3[k]) for k in p1)
    assert m1 != m3


def test_a_deep_copy_of_an_agent_trains_on_exactly_as_the_original() -> None:
    import copy

    algo, env_id, config = CASES[2]  # PROPS: two LeanAdams (theta's and phi's) and a behavior policy
    agent = ALGORITHMS[algo](env_id, seed=5, **config)
    agent.learn(384, progress=False)
    twin = copy.deepcopy(agent)
    at_copy = {k: v.clone() for k, v in agent.state_dict()["algo_state"]["policy"].items()}
    for a in (agent, twin):
        a.learn(384, progress=False, reset=False)
    ours, theirs = agent.state_dict()["algo_state"], twin.state_dict()["algo_state"]
    agent.close()
    twin.close()
    for part in ("policy", "value"):
        assert all(torch.equal(ours[part][k], theirs[part][k]) for k in ours[part])
    # both trained on, each on its own memory
    assert not all(torch.equal(ours["policy"][k], at_copy[k]) for k in at_copy)
    assert agent.global_step == twin.global_step == 768
    pairs = zip(agent.policy.parameters(), twin.policy.parameters(), strict=True)
    assert all(p.data_ptr() != q.data_ptr() for p, q in pairs)
