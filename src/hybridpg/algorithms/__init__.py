"""Algorithms: one file each; ``ALGORITHMS`` maps CLI names to agent classes."""

from hybridpg.algorithms.base import Agent
from hybridpg.algorithms.hnpg import HNPG
from hybridpg.algorithms.onpolicy import PPO, PROPS, ROS, OnPolicyAgent, PPOBuffer
from hybridpg.algorithms.sac import SAC

ALGORITHMS: dict[str, type[Agent]] = {
    "ppo": PPO,
    "ppo-buffer": PPOBuffer,
    "props": PROPS,
    "ros": ROS,
    "sac": SAC,
    "hnpg": HNPG,
}

__all__ = ["ALGORITHMS", "HNPG", "PPO", "PROPS", "ROS", "SAC", "Agent", "OnPolicyAgent", "PPOBuffer"]
