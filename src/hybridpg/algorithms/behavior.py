"""Who samples the on-policy data: the target itself, PROPS's adapted phi, or ROS's one-step phi.

The on-policy loop talks to one small interface and never asks which method it runs:

* ``chunk`` env steps are collected between two calls of ``adapt`` (n for the target, m otherwise);
* ``actor(data)`` is the network that acts for the next env step (``data()`` gives the buffer's
  normalized observations and actions, which ROS needs before every step);
* ``before_target_update`` / ``after_target_update`` bracket each PPO update of theta;
* ``adapt(data)`` runs after every chunk and returns metrics to log (PROPS's behavior update).

Each keeps its own networks, optimizer and ``state_dict``, so a checkpoint restores it exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from hybridpg.algorithms.props import props_update, ros_update
from hybridpg.config import OnPolicyConfig, PROPSConfig, ROSConfig
from hybridpg.networks import Policy, make_adam

#: the buffer's normalized (observations, actions), leaving out the ``skip_oldest`` oldest rows
BufferData = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


class TargetSampling:
    """PPO and PPO-Buffer: theta samples whole batches; nothing to adapt."""

    name: ClassVar[str] = "target"

    def __init__(self, target: Policy, cfg: OnPolicyConfig, generator: torch.Generator) -> None:
        self.target, self.cfg, self.generator = target, cfg, generator

    @property
    def chunk(self) -> int:
        return self.cfg.n_steps

    def actor(self, data: BufferData) -> Policy:
        del data
        return self.target

    def before_target_update(self) -> None:
        pass

    def after_target_update(self) -> None:
        pass

    def restart_from_target(self) -> None:
        """Start every copy of theta afresh from it (after theta was loaded or cloned from data)."""

    def adapt(self, data: BufferData, buffer_full: bool) -> dict[str, float]:
        del data, buffer_full
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        del state


class PROPSSampling(TargetSampling):
    """PROPS: every m steps phi restarts from theta and is adapted so the buffer looks on-policy."""

    name = "props"
    cfg: PROPSConfig

    def __init__(self, target: Policy, cfg: OnPolicyConfig, generator: torch.Generator) -> None:
        assert isinstance(cfg, PROPSConfig)
        super().__init__(target, cfg, generator)
        self.behavior = copy.deepcopy(target)
        self.reference = copy.deepcopy(target).requires_grad_(False)  # theta as PROPS's update sees it
        self.optimizer = make_adam(self.behavior.parameters(), cfg.props_lr)  # state persists across updates

    @property
    def chunk(self) -> int:
        return self.cfg.behavior_steps

    def actor(self, data: BufferData) -> Policy:
        del data
        return self.behavior

    def before_target_update(self) -> None:
        if self.cfg.props_stale_reference:  # the authors' quirk: the next update sees the old theta
            self.reference.load_state_dict(self.target.state_dict())

    def after_target_update(self) -> None:
        if not self.cfg.props_stale_reference:
            self.reference.load_state_dict(self.target.state_dict())

    def restart_from_target(self) -> None:
        self.behavior.load_state_dict(self.target.state_dict())
        self.reference.load_state_dict(self.target.state_dict())

    def adapt(self, data: BufferData, buffer_full: bool) -> dict[str, float]:
        obs, actions = self.begin_adapt(data, buffer_full)
        metrics = props_update(self.behavior, self.reference, self.optimizer, obs, actions, self.cfg, self.generator)
        self.end_adapt()
        return metrics

    def begin_adapt(self, data: BufferData, buffer_full: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """phi = copy(theta); returns the buffer rows PROPS's update corrects."""
        self.behavior.load_state_dict(self.target.state_dict())
        # the oldest m rows are evicted by the next collection before they could be corrected
        skip = self.cfg.behavior_steps // self.cfg.num_envs if buffer_full else 0
        return data(skip)

    def end_adapt(self) -> None:
        if self.cfg.props_stale_reference:  # only the first update after a PPO update sees the old theta
            self.reference.load_state_dict(self.target.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"behavior": self.behavior.state_dict(), "reference": self.reference.state_dict(),
                "behavior_optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.behavior.load_state_dict(state["behavior"])
        self.reference.load_state_dict(state["reference"])
        self.optimizer.load_state_dict(state["behavior_optimizer"])


class ROSSampling(TargetSampling):
    """ROS: before every env step, phi = theta - ros_lr * (mean score of the buffer at theta)."""

    name = "ros"
    cfg: ROSConfig

    def __init__(self, target: Policy, cfg: OnPolicyConfig, generator: torch.Generator) -> None:
        assert isinstance(cfg, ROSConfig)
        super().__init__(target, cfg, generator)
        self.behavior = copy.deepcopy(target)
        # the step is exactly -ros_lr * g_bar: plain SGD, no momentum
        self.optimizer = torch.optim.SGD(self.behavior.parameters(), lr=cfg.ros_lr, momentum=0.0)

    @property
    def chunk(self) -> int:
        return self.cfg.behavior_steps

    def actor(self, data: BufferData) -> Policy:
        # collection runs under inference_mode; the step needs ordinary tensors and autograd
        with torch.inference_mode(False), torch.enable_grad():
            obs, actions = data(0)
            if obs.shape[0] == 0:
                return self.target  # no data yet: g_bar is zero, so phi is theta
            ros_update(self.behavior, self.optimizer, obs, actions, theta=self.target)
        return self.behavior

    def restart_from_target(self) -> None:
        self.behavior.load_state_dict(self.target.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"behavior": self.behavior.state_dict(), "behavior_optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.behavior.load_state_dict(state["behavior"])
        self.optimizer.load_state_dict(state["behavior_optimizer"])


SAMPLERS: dict[str, type[TargetSampling]] = {cls.name: cls for cls in (TargetSampling, PROPSSampling, ROSSampling)}
