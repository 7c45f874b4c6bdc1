"""Typed, validated configuration: one dataclass per algorithm, each holding only its own fields.

``base.py`` has the shared fields and the checking and parsing of values; ``onpolicy.py`` PPO,
PPO-Buffer, PROPS and ROS; ``offpolicy.py`` SAC and HNPG. ``CONFIGS`` maps CLI names to classes.
"""

from hybridpg.config.base import BaseConfig, coerce_field, parse_key_values
from hybridpg.config.offpolicy import HNPGConfig, SACConfig
from hybridpg.config.onpolicy import OnPolicyConfig, PPOBufferConfig, PPOConfig, PROPSConfig, ROSConfig

CONFIGS: dict[str, type[BaseConfig]] = {
    "ppo": PPOConfig,
    "ppo-buffer": PPOBufferConfig,
    "props": PROPSConfig,
    "ros": ROSConfig,
    "sac": SACConfig,
    "hnpg": HNPGConfig,
}

__all__ = [
    "CONFIGS",
    "BaseConfig",
    "HNPGConfig",
    "OnPolicyConfig",
    "PPOBufferConfig",
    "PPOConfig",
    "PROPSConfig",
    "ROSConfig",
    "SACConfig",
    "coerce_field",
    "parse_key_values",
]
