"""Algorithms: one file each; ``ALGORITHMS`` maps CLI names to agent classes."""

from hybridpg.algorithms.base import Agent
from hybridpg.algorithms.onpolicy import PPO, PROPS, ROS, OnPolicyAgent, PPOBuffer

ALGORITHMS: dict[str, type[Agent]] = {
    "ppo": PPO,
    "ppo-buffer": PPOBuffer,
    "props": PROPS,
    "ros": ROS,
}

__all__ = ["ALGORITHMS", "PPO", "PROPS", "ROS", "Agent", "OnPolicyAgent", "PPOBuffer"]
