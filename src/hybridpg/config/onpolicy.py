"""The on-policy methods' configs: PPO, PPO-Buffer, PROPS and ROS (spec: props.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from hybridpg.config.base import _INT_CAPS, BaseConfig, _f, _require


@dataclass
class OnPolicyConfig(BaseConfig):
    """PPO / PPO-Buffer / PROPS / ROS: one code path, different settings (spec: props.md).

    This holds what every on-policy method reads; PROPS and ROS add their behavior-policy fields.
    """

    algo: ClassVar[str] = "on-policy"
    #: who samples: the target itself (PPO, PPO-Buffer), PROPS's or ROS's behavior policy
    behavior: ClassVar[str] = "target"

    n_steps: int = _f(2048, "n: env steps (over all envs) between two PPO updates of the target policy")
    buffer_batches: int = _f(1, "b: the PPO update trains on the last b batches of n steps")
    anneal_lr: bool = _f(True, "anneal the PPO learning rate linearly to 0 over the run")
    gae_lambda: float = _f(0.95, "GAE lambda")
    n_epochs: int = _f(10, "PPO epochs over the buffer per update")
    n_minibatches: int = _f(32, "PPO minibatches per epoch (size b*n / n_minibatches)")
    clip_coef: float = _f(0.2, "PPO ratio clip (and value clip) range")
    clip_vloss: bool = _f(True, "clip the value loss around the old values")
    ent_coef: float = _f(0.01, "entropy bonus coefficient")
    vf_coef: float = _f(0.5, "value loss coefficient")
    max_grad_norm: float = _f(0.5, "global gradient-norm clip of each PPO step")
    target_kl: float | None = _f(0.03, "end the update once a minibatch's approx. KL exceeds this (none: never)")
    norm_obs: bool = _f(True, "normalize observations with running statistics (clip 10)")
    norm_reward: bool = _f(True, "scale rewards by the running std of the discounted return (clip 10)")
    compile: bool = _f(False, "run each minibatch step (loss, gradient, clip, Adam) as one torch.compile graph "
                              "(compiling takes seconds, once per process)")
    se_freq: int = _f(-1, "log the buffer's sampling error every this many PPO updates (0: off; -1: about 30 per run)")
    se_epochs: int = _f(100, "epochs of the maximum-likelihood fit behind each sampling-error estimate")
    offline_dataset: str | None = _f(None, "Minari dataset id or path for BC (docs/offline.md)")
    offline_root: str | None = _f(None, "dataset root (default: $MINARI_DATASETS_PATH)")
    bc_steps: int = _f(0, "behaviour-cloning gradient steps before online training")
    bc_coef: float = _f(0.0, "weight of the BC steps run after every PPO update (0: off)")
    bc_online_steps: int = _f(4, "BC gradient steps after every PPO update when bc_coef > 0")
    bc_critic: bool = _f(False, "also pre-train the critic on the dataset's Monte-Carlo returns")
    bc_batch_size: int = _f(256, "BC minibatch size")
    bc_lr: float = _f(1e-3, "BC Adam step size")

    @property
    def full_minibatch_size(self) -> int:
        """PPO's minibatch size once the buffer holds all b batches (the size a compiled step compiles)."""
        return max(self.buffer_batches * self.n_steps // self.n_minibatches, 1)

    def validate(self) -> None:
        super().validate()
        _require(self.n_steps >= 1, "n_steps", self.n_steps, "must be >= 1")
        _require(
            self.n_steps % self.num_envs == 0,
            "n_steps",
            self.n_steps,
            f"must be divisible by num_envs={self.num_envs}",
        )
        _require(self.buffer_batches >= 1, "buffer_batches", self.buffer_batches, "b must be >= 1")
        _require(self.n_steps * self.buffer_batches <= _INT_CAPS["n_steps"], "buffer_batches", self.buffer_batches,
                 f"the buffer b*n must hold at most {_INT_CAPS['n_steps']:,} steps")
        _require(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", self.gae_lambda, "must be in [0, 1]")
        _require(self.n_epochs >= 1, "n_epochs", self.n_epochs, "must be >= 1")
        _require(self.n_minibatches >= 1, "n_minibatches", self.n_minibatches, "must be >= 1")
        _require(
            self.n_minibatches <= self.n_steps * self.buffer_batches,
            "n_minibatches",
            self.n_minibatches,
            "must not exceed the buffer size b*n",
        )
        _require(self.clip_coef > 0, "clip_coef", self.clip_coef, "must be > 0")
        _require(self.ent_coef >= 0, "ent_coef", self.ent_coef, "must be >= 0")
        _require(self.vf_coef >= 0, "vf_coef", self.vf_coef, "must be >= 0")
        _require(self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm, "must be > 0")
        _require(
            self.target_kl is None or self.target_kl > 0, "target_kl", self.target_kl, "must be > 0 or None"
        )
        _require(self.se_freq >= -1, "se_freq", self.se_freq, "must be >= 0 (0 disables) or -1 (auto: ~30 per run)")
        _require(self.se_epochs >= 1, "se_epochs", self.se_epochs, "must be >= 1")
        _validate_bc(self)


def _validate_behavior_steps(cfg: PROPSConfig | ROSConfig) -> None:
    m = cfg.behavior_steps
    _require(m >= 1, "behavior_steps", m, "m must be >= 1")
    _require(cfg.n_steps % m == 0, "behavior_steps", m, f"m must divide n_steps={cfg.n_steps}")
    _require(m % cfg.num_envs == 0, "behavior_steps", m, f"m must be divisible by num_envs={cfg.num_envs}")



def _validate_bc(cfg: OnPolicyConfig) -> None:
    _require(cfg.bc_steps >= 0, "bc_steps", cfg.bc_steps, "must be >= 0")
    _require(math.isfinite(cfg.bc_coef) and cfg.bc_coef >= 0, "bc_coef", cfg.bc_coef, "must be >= 0")
    _require(cfg.bc_online_steps >= 1, "bc_online_steps", cfg.bc_online_steps, "must be >= 1")
    _require(cfg.bc_batch_size >= 1, "bc_batch_size", cfg.bc_batch_size, "must be >= 1")
    _require(math.isfinite(cfg.bc_lr) and cfg.bc_lr > 0, "bc_lr", cfg.bc_lr, "must be > 0")
    uses_data = cfg.bc_steps > 0 or cfg.bc_coef > 0
    _require(not uses_data or bool(cfg.offline_dataset), "offline_dataset", cfg.offline_dataset,
             "bc_steps/bc_coef need an offline dataset")
    _require(not cfg.offline_dataset or uses_data, "offline_dataset", cfg.offline_dataset,
             "is unused: set bc_steps > 0 and/or bc_coef > 0")
    _require(not cfg.bc_critic or cfg.bc_steps > 0, "bc_critic", cfg.bc_critic, "needs bc_steps > 0")


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO: b = 1, theta samples."""

    algo: ClassVar[str] = "ppo"


@dataclass
class PPOBufferConfig(OnPolicyConfig):
    """PPO on the last b batches as if they were on-policy; theta samples."""

    algo: ClassVar[str] = "ppo-buffer"
    buffer_batches: int = _f(2, "b: the PPO update trains on the last b batches of n steps")


@dataclass
class PROPSConfig(OnPolicyConfig):
    """PROPS: a behavior policy phi, adapted every m steps, corrects the buffer's sampling error."""

    algo: ClassVar[str] = "props"
    behavior: ClassVar[str] = "props"
    buffer_batches: int = _f(2, "b: the PPO update trains on the last b batches of n steps (PROPS needs b >= 2)")
    behavior_steps: int = _f(256, "m: env steps between two behavior-policy updates (must divide n)")
    props_lr: float = _f(1e-3, "behavior policy's Adam step size (not annealed)")
    props_epochs: int = _f(16, "epochs of each behavior update")
    props_minibatches: int = _f(16, "behavior minibatches: each holds (b*n - m) / this many rows")
    props_clip: float = _f(0.3, "eps_p: the ratio pi_phi / pi_theta is not pushed below 1 - eps_p")
    props_lambda: float = _f(0.3, "weight of the KL(phi || theta) penalty")
    props_target_kl: float = _f(0.05, "delta: stop the behavior update once KL(theta || phi) exceeds this")
    props_stale_reference: bool = _f(False, "the authors' quirk: the first behavior update after a PPO update "
                                            "sees the old theta")

    def validate(self) -> None:
        super().validate()
        _validate_behavior_steps(self)
        _require(self.buffer_batches >= 2, "buffer_batches", self.buffer_batches, "PROPS needs b >= 2")
        _require(math.isfinite(self.props_lr) and self.props_lr > 0, "props_lr", self.props_lr, "must be > 0")
        _require(self.props_epochs >= 1, "props_epochs", self.props_epochs, "must be >= 1")
        _require(self.props_minibatches >= 1, "props_minibatches", self.props_minibatches, "must be >= 1")
        _require(0 < self.props_clip < 1, "props_clip", self.props_clip, "must be in (0, 1)")
        _require(math.isfinite(self.props_lambda) and self.props_lambda >= 0, "props_lambda", self.props_lambda,
                 "must be >= 0")
        _require(math.isfinite(self.props_target_kl) and self.props_target_kl > 0, "props_target_kl",
                 self.props_target_kl, "must be > 0")


@dataclass
class ROSConfig(OnPolicyConfig):
    """ROS: before every env step phi = theta - ros_lr * (mean score of the buffer at theta)."""

    algo: ClassVar[str] = "ros"
    behavior: ClassVar[str] = "ros"
    buffer_batches: int = _f(2, "b: the PPO update trains on the last b batches of n steps")
    behavior_steps: int = _f(256, "m: env steps collected between two checks of the loop (must divide n)")
    # the ROS paper's step on its small tasks is far larger; this default is a no-op, tune per task
    ros_lr: float = _f(1e-5, "alpha: the step phi = theta - alpha * g_bar taken before every env step")

    def validate(self) -> None:
        super().validate()
        _validate_behavior_steps(self)
        _require(math.isfinite(self.ros_lr) and self.ros_lr > 0, "ros_lr", self.ros_lr, "must be > 0")


