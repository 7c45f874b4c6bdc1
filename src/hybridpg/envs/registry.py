"""Registration of hybridpg's own environments with Gymnasium."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

import gymnasium as gym

from hybridpg.errors import EnvError

__all__ = [
    "COMBINATION_LOCK_CONTINUOUS_ID",
    "COMBINATION_LOCK_ID",
    "DISCRETE_2D100_ID",
    "ENV_IDS",
    "TWO_STEP_ID",
    "import_env_modules",
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


# modules named by --import (comma-separated); worker processes inherit it and import them too
IMPORTS_ENV_VAR = "HYBRIDPG_IMPORTS"


def import_env_modules(names: Iterable[str], export: bool = False) -> None:
    """Import modules that register environments (rl-zoo's --gym-packages); each failure is one
    EnvError line. ``export`` also lists them in $HYBRIDPG_IMPORTS for worker processes."""
    names = [n.strip() for n in names if n.strip()]
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise EnvError(f"cannot import '{name}': not a module name (e.g. my_envs or my_pkg.envs)")
        # the console script's sys.path lacks the working directory, where a user's module usually is
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.append(os.getcwd())
        try:
            importlib.import_module(name)
        except Exception as exc:  # a user's module can fail in any way; the first line says how
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            reason = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
            raise EnvError(f"cannot import module '{name}': {reason}") from None
    if export and names:
        known = [n for n in os.environ.get(IMPORTS_ENV_VAR, "").split(",") if n]
        os.environ[IMPORTS_ENV_VAR] = ",".join(dict.fromkeys([*known, *names]))


def import_exported_modules() -> None:
    """Import what a parent process listed in $HYBRIDPG_IMPORTS (a sweep worker, an async env)."""
    listed = os.environ.get(IMPORTS_ENV_VAR, "")
    if listed:
        import_env_modules(listed.split(","))


def import_module_of(env_id: str) -> str:
    """For Gymnasium's ``module:EnvId-v0`` form: import the module, return the bare id."""
    if ":" not in env_id:
        return env_id
    module, name = env_id.split(":", 1)
    import_env_modules([module])
    return name
