"""hybridpg: data-efficient policy-gradient RL that reuses off-policy data on Gymnasium tasks."""

from hybridpg.algorithms import ALGORITHMS, HNPG, PPO, PROPS, ROS, SAC, Agent, PPOBuffer
from hybridpg.algorithms.inference import TrainedPolicy
from hybridpg.errors import HybridPGError
from hybridpg.training.callbacks import Callback, CallbackEvent
from hybridpg.training.evaluate import EvalResult, evaluate

__version__ = "0.1.0"

#: load_policy(path, env=None): a run's policy for predict, without its training envs or dataset
load_policy = Agent.load_policy

__all__ = [
    "ALGORITHMS", "HNPG", "PPO", "PROPS", "ROS", "SAC", "Agent", "Callback", "CallbackEvent", "EvalResult",
    "HybridPGError", "PPOBuffer", "TrainedPolicy", "evaluate", "load_policy",
]
