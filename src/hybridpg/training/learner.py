"""What the run machinery needs from an agent: ``training/`` talks to this, never to ``algorithms/``.

``RunRecord`` is the run's own state that travels inside the agent's checkpoint (where metrics.jsonl
ended, the last and best evaluation), so a resumed run continues its logs and best.pt exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hybridpg.config import BaseConfig


@dataclass
class RunRecord:
    metrics_bytes: int | None = None  # size of metrics.jsonl when the checkpoint was written
    last_eval: dict[str, float] = field(default_factory=dict)  # the last evaluation at that time
    last_eval_at: tuple[int, int] | None = None  # its (env step, updates)
    best_eval: float | None = None  # the best evaluation return so far (checkpoints/best.pt)
    # not saved: the folder a loaded checkpoint came from (resuming there trims metrics.jsonl once)
    loaded_from: Path | None = None

    def state_dict(self) -> dict[str, Any]:
        return {
            "metrics_bytes": self.metrics_bytes,
            "last_eval": dict(self.last_eval),
            "last_eval_at": None if self.last_eval_at is None else list(self.last_eval_at),
            "best_eval": self.best_eval,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.metrics_bytes = state.get("metrics_bytes")
        self.last_eval = {str(k): float(v) for k, v in (state.get("last_eval") or {}).items()}
        at = state.get("last_eval_at")
        self.last_eval_at = None if at is None else (int(at[0]), int(at[1]))
        best = state.get("best_eval")
        self.best_eval = None if best is None else float(best)


class Actor(Protocol):
    """What evaluation needs: actions for observations, and the env (with its keywords) to evaluate on."""

    @property
    def env_spec(self) -> Any: ...  # a Gymnasium id, an Env instance or a factory

    @property
    def config(self) -> BaseConfig: ...  # read-only here, so an agent may narrow its config's type

    def predict(
        self,
        obs: np.ndarray,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]: ...


class Learner(Actor, Protocol):
    """An agent as the run and the callbacks see it."""

    env_id: str
    seed: int
    global_step: int
    updates: int
    record: RunRecord

    def save(self, path: str | Path) -> None: ...
