"""Registration of hybridpg's own environments with Gymnasium."""

from __future__ import annotations

import gymnasium as gym

__all__ = [
    "COMBINATION_LOCK_CONTINUOUS_ID",
    "COMBINATION_LOCK_ID",
    "DISCRETE_2D100_ID",
    "ENV_IDS",
    "TWO_STEP_ID",
    "register_envs",
]

DISCRETE_2D100_ID = "hybridpg/Discrete2D100-v0"
TWO_STEP_ID = "hybridpg/TwoStep-v0"
COMBINATION_LOCK_ID = "hybridpg/CombinationLock-v0"
COMBINATION_LOCK_CONTINUOUS_ID = "hybridpg/CombinationLockContinuous-v0"

# (id, entry point, max_episode_steps). The lock has no time limit here: its episodes end by
# termination after exactly `horizon` steps, and the horizon is a constructor kwarg.
_SPECS: tuple[tuple[str, str, int | None], ...] = (
    (DISCRETE_2D100_ID, "hybridpg.envs.toy:Discrete2D100Env", 50),
    (TWO_STEP_ID, "hybridpg.envs.toy:TwoStepEnv", None),
    (COMBINATION_LOCK_ID, "hybridpg.envs.lock:CombinationLockEnv", None),
    (COMBINATION_LOCK_CONTINUOUS_ID, "hybridpg.envs.lock:CombinationLockContinuousEnv", None),
)

ENV_IDS: tuple[str, ...] = tuple(env_id for env_id, _, _ in _SPECS)


def register_envs() -> None:
    """Register all hybridpg environments with Gymnasium; calling it again does nothing."""
    for env_id, entry_point, max_episode_steps in _SPECS:
        # Re-registering would make Gymnasium warn about overriding an existing id.
        if env_id in gym.registry:
            continue
        gym.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps)
