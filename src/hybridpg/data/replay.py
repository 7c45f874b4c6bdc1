"""Replay storage for off-policy learners (SAC): preallocated torch tensors, sampled by index.

Why torch tensors and not numpy arrays: a batch is gathered with ``index_select`` straight into
tensors the update uses, so no per-batch numpy->torch conversion happens. Storage is allocated
with ``torch.empty``: the OS hands out pages only when a row is first written, so a 1e6-row buffer
costs memory in proportion to what it holds.

``terminated`` is stored apart from ``truncated``; on truncation (time limit) ``next_obs`` is the
true final observation, so the learner keeps bootstrapping from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hybridpg.errors import CheckpointError, ConfigError


@dataclass
class Batch:
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor  # float 0/1, ready to multiply the bootstrap


def physical_memory() -> int:
    """Bytes of physical memory on this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def require_memory(nbytes: int, what: str) -> None:
    """Refuse up front what cannot fit: torch allocates lazily, so it would fail (or be killed) mid-run."""
    total = physical_memory()
    if nbytes > total:
        raise ConfigError(f"{what} needs {nbytes / 2**30:,.1f} GiB, more than this machine's "
                          f"{total / 2**30:,.1f} GiB of memory")


class ReplayBuffer:
    """A ring buffer of ``capacity`` transitions with flat float32 observations."""

    _FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated", "truncated")

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        self.capacity = int(capacity)
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        require_memory(self.capacity * (2 * self.obs_dim + self.action_dim + 2) * 4, f"a replay buffer of {capacity:,}")
        # the five sampled fields are column blocks of one row-major table, so a batch is one gather
        # (one index_select, not five); the named fields are views into it
        o, a = self.obs_dim, self.action_dim
        self._table = torch.empty((self.capacity, 2 * o + a + 2))
        # obs, actions, rewards, next_obs, terminated: rewards and terminated are single columns
        self._layout: tuple[slice | int, ...] = (slice(0, o), slice(o, o + a), o + a, slice(o + a + 1, 2 * o + a + 1),
                                                 2 * o + a + 1)
        self.obs, self.actions, self.rewards, self.next_obs, self.terminated = self._split(self._table)
        self.truncated = torch.empty(self.capacity, dtype=torch.bool)
        self._table_np = self._table.numpy()
        self.pos = 0
        self.size = 0

    def _split(self, table: torch.Tensor) -> list[torch.Tensor]:
        """The field views of ``table``."""
        return [table[:, cols] for cols in self._layout]

    def __len__(self) -> int:
        return self.size

    def add(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Add one row per env. ``next_obs`` must be the true final observation where an episode ended."""
        n = len(rewards)
        rows: Any = (
            slice(self.pos, self.pos + n)
            if self.pos + n <= self.capacity
            else (self.pos + np.arange(n)) % self.capacity
        )
        # numpy assigns with a dtype cast in one pass; the table's numpy view shares its memory
        values = (obs.reshape(n, -1), actions.reshape(n, -1), rewards, next_obs.reshape(n, -1), terminated)
        for cols, value in zip(self._layout, values, strict=True):
            self._table_np[rows, cols] = value
        self.truncated.numpy()[rows] = truncated
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(self.size, (batch_size,), generator=generator)
        return Batch(*self._split(self._table.index_select(0, idx)))

    # -- checkpoints: only the filled rows are saved ------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {name: getattr(self, name)[: self.size].clone() for name in self._FIELDS}
        state.update(pos=self.pos, size=self.size, capacity=self.capacity)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        if size > self.capacity or int(state["capacity"]) != self.capacity:
            raise CheckpointError(
                f"checkpoint's replay buffer has capacity {state['capacity']}, this agent's {self.capacity}"
            )
        for name in self._FIELDS:
            getattr(self, name)[:size] = state[name]
        self.pos, self.size = int(state["pos"]), size
