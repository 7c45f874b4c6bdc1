"""Where an on-policy step's time goes: collection, PPO update and PROPS behavior update.

    python benchmarks/phase_split.py --steps 16384 [--warmup 4096] [--compile]

Times each phase with wall-clock timers around the agent's own methods (SB3's PPO defaults, as in
throughput.py) and prints microseconds per env step and per minibatch gradient step. ``--warmup N``
trains N steps untimed first (compiling, PROPS's buffer filling); ``--compile`` sets compile=True.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from throughput import SB3_DEFAULTS  # the same settings as the SB3 comparison (same folder)

import hybridpg.algorithms.behavior as behavior
from hybridpg import PPO, PROPS


def timed(totals: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        totals[name] += time.perf_counter() - start
        return out

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16384)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()
    for name, algo, extra in (("ppo", PPO, {}), ("props", PROPS, {"behavior_steps": 256})):
        totals = {"collect": 0.0, "ppo_update": 0.0, "props_update": 0.0}
        grad_steps: list[float] = []
        original = behavior.props_update

        def counting(*a: Any, _orig: Any = original, _steps: list[float] = grad_steps, **k: Any) -> dict[str, float]:
            out: dict[str, float] = _orig(*a, **k)
            _steps.append(out.get("props/grad_steps", 0.0))
            return out

        agent = algo(args.env, seed=0, **SB3_DEFAULTS, **extra, compile=args.compile)
        if args.warmup:
            agent.learn(args.warmup, progress=False)
        updates_before = agent.updates
        behavior.props_update = timed(totals, "props_update", counting)  # type: ignore[assignment]
        agent.collect = timed(totals, "collect", agent.collect)  # type: ignore[method-assign]
        agent._ppo_update = timed(totals, "ppo_update", agent._ppo_update)  # type: ignore[method-assign]
        start = time.perf_counter()
        agent.learn(args.steps, progress=False, reset=not args.warmup)
        total = time.perf_counter() - start
        behavior.props_update = original
        ppo_steps = (agent.updates - updates_before) * 10 * 32
        per = {k: round(v / args.steps * 1e6, 1) for k, v in totals.items()}
        print(f"{name}: {per} us per env step; total {total / args.steps * 1e6:.1f} us ({args.steps / total:.0f} SPS)")
        print(f"  PPO minibatch step {totals['ppo_update'] / max(ppo_steps, 1) * 1e6:.0f} us")
        if grad_steps:
            print(
                f"  PROPS steps per env step {sum(grad_steps) / args.steps:.2f}, "
                f"{totals['props_update'] / sum(grad_steps) * 1e6:.0f} us each"
            )
        agent.close()


if __name__ == "__main__":
    main()
