"""Are compiled and eager updates the same along a whole run? Replay every update the other way.

One run of PROPS (the PROPS RL comparison's settings, Hopper-v5) trains as usual, with or without
``compile=True``. Before each PROPS behavior update and each PPO update, a copy of the networks,
optimizer state and RNG is updated the other way (eager where the run compiles, compiled where it
does not) on the same data; then the run's own update runs. The two results are compared: the
number of gradient steps taken (an early stop on another minibatch would differ) and the largest
parameter difference afterwards. The copies never feed back into the run, which trains exactly as
it would alone.

A systematic difference between the two paths (a step skipped, a state not carried, another
formula) shows as differing step counts or parameter gaps far above float rounding on many updates;
float rounding alone shows as gaps near 1e-7, with an occasional update where a discrete event
(a clip or an early stop at its threshold) amplifies it.

    python benchmarks/compile_replay.py [--seed 0] [--steps 200000] [--run compiled|eager]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import time
import types
from pathlib import Path
from typing import Any

import torch
import yaml

from hybridpg.algorithms import ALGORITHMS
from hybridpg.algorithms.behavior import BufferData, PROPSSampling
from hybridpg.algorithms.onpolicy import OnPolicyAgent
from hybridpg.networks import Policy, make_adam

SETTINGS = Path("benchmarks/results/props_rl/runs/Hopper-v5/props/seed0/config.yaml")
OUT = Path("benchmarks/results/compile_replay")


def flat(params: Any) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def generator_like(source: torch.Generator) -> torch.Generator:
    out = torch.Generator()
    out.set_state(source.get_state())
    return out


class Replay:
    """Wraps one agent's two updates; each call replays the update the other way first."""

    def __init__(self, agent: OnPolicyAgent) -> None:
        self.agent = agent
        self.other = dataclasses.replace(agent.config, compile=not agent.config.compile)
        self.records: dict[str, list[dict[str, float]]] = {"props": [], "ppo": []}
        sampler = agent.sampler
        assert isinstance(sampler, PROPSSampling)
        self.sampler = sampler
        self.own_adapt, self.own_ppo = sampler.adapt, agent._ppo_update
        sampler.adapt = self.adapt  # type: ignore[method-assign]
        agent._ppo_update = self.ppo_update  # type: ignore[method-assign]

    def adapt(self, data: BufferData, buffer_full: bool) -> dict[str, float]:
        target = copy.deepcopy(self.agent.policy)
        twin = PROPSSampling(target, self.other, generator_like(self.sampler.generator))
        twin.load_state_dict(copy.deepcopy(self.sampler.state_dict()))
        theirs = twin.adapt(data, buffer_full)
        ours = self.own_adapt(data, buffer_full)
        if ours:
            self.records["props"].append(self.compare(ours, theirs, "props/grad_steps",
                                                      self.sampler.behavior.parameters(), twin.behavior.parameters()))
        return ours

    def ppo_update(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        agent = self.agent
        policy: Policy = copy.deepcopy(agent.policy)
        value = copy.deepcopy(agent.value)
        params = [*policy.parameters(), *value.parameters()]
        optimizer = make_adam(params, agent.config.learning_rate)
        optimizer.load_state_dict(copy.deepcopy(agent.optimizer.state_dict()))
        # _ppo_update reads only these attributes of the agent
        twin = types.SimpleNamespace(policy=policy, value=value, optimizer=optimizer, config=self.other,
                                     torch_rng=generator_like(agent.torch_rng))
        theirs = OnPolicyAgent._ppo_update(twin, data)  # type: ignore[arg-type]
        ours = self.own_ppo(data)
        self.records["ppo"].append(self.compare(ours, theirs, "losses/epochs_run", agent.params, params))
        return ours

    @staticmethod
    def compare(ours: dict[str, float], theirs: dict[str, float], count: str, own: Any,
                other: Any) -> dict[str, float]:
        return {"ours": ours[count], "theirs": theirs[count], "gap": float((flat(own) - flat(other)).abs().max())}


def summary(records: list[dict[str, float]]) -> dict[str, Any]:
    gaps = sorted(r["gap"] for r in records)
    return {
        "updates": len(records),
        "same_count": sum(r["ours"] == r["theirs"] for r in records),
        "mean_count_run": sum(r["ours"] for r in records) / len(records),
        "mean_count_replay": sum(r["theirs"] for r in records) / len(records),
        "median_gap": gaps[len(gaps) // 2],
        "gap_above_1e-4": sum(g > 1e-4 for g in gaps),
        "max_gap": gaps[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--run", choices=["compiled", "eager"], default="compiled")
    args = parser.parse_args()
    torch.set_num_threads(1)
    doc = yaml.safe_load(SETTINGS.read_text())
    config = ALGORITHMS["props"].config_cls.from_saved(doc["config"])
    config = dataclasses.replace(config, compile=args.run == "compiled", eval_freq=0, checkpoint_freq=0)
    agent = ALGORITHMS["props"](doc["env"], seed=args.seed, config=config)
    assert isinstance(agent, OnPolicyAgent)
    replay = Replay(agent)
    start = time.perf_counter()
    try:
        agent.learn(args.steps, progress=False)
    finally:
        agent.close()
    result = {"env": doc["env"], "seed": args.seed, "steps": args.steps, "run": args.run,
              "replayed": "eager" if args.run == "compiled" else "compiled",
              "wall_seconds": round(time.perf_counter() - start, 1),
              **{kind: summary(records) for kind, records in replay.records.items()}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.run}_seed{args.seed}_{args.steps}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
