"""SAC's and HNPG's configs (spec: hybrid-and-sac.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from hybridpg.config.base import BaseConfig, _f, _require


@dataclass
class SACConfig(BaseConfig):
    """Soft actor-critic, 2018b form with a learned temperature (spec: hybrid-and-sac.md).

    ``eval_freq``/``checkpoint_freq`` count gradient steps; the loop reports to the run every
    ``log_freq`` gradient steps, so both must be multiples of it.
    """

    algo: ClassVar[str] = "sac"
    box_only: ClassVar[bool] = True

    hidden_sizes: tuple[int, ...] = _f((256, 256), "hidden layer widths of actor and critics, e.g. 256,256")
    buffer_size: int = _f(1_000_000, "replay buffer capacity in transitions")
    batch_size: int = _f(256, "transitions per gradient step")
    tau: float = _f(0.005, "Polyak averaging rate of the target critics")
    learning_starts: int = _f(5000, "env steps with random actions before the first gradient step")
    target_entropy: float | None = _f(None, "entropy the temperature aims for (none: -|A|)")
    init_alpha: float = _f(1.0, "initial temperature")
    autotune: bool = _f(True, "learn the temperature")
    policy_frequency: int = _f(1, "update actor and temperature every k gradient steps (k steps at once)")
    compile: bool = _f(False, "torch.compile the networks")
    # changes rounding; slower where bf16 is emulated (AVX2-only CPUs), where SAC warns
    matmul_precision: str = _f("float32", "float32, or bfloat16 for the hidden-to-hidden matmuls (fp32 elsewhere)")
    save_replay_buffer: bool = _f(False, "store the replay buffer in checkpoints (needed for a bit-exact resume)")
    log_freq: int = _f(1000, "report to the run every this many gradient steps")
    eval_freq: int = _f(10_000, "evaluate every this many gradient steps (a multiple of log_freq)")
    checkpoint_freq: int = _f(10_000, "write checkpoints/latest.pt every this many gradient steps (x log_freq)")

    def validate(self) -> None:
        super().validate()
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        _require(
            self.buffer_size >= max(self.batch_size, self.learning_starts, 1),
            "buffer_size",
            self.buffer_size,
            "must be >= batch_size and >= learning_starts",
        )
        _require(0.0 < self.tau <= 1.0, "tau", self.tau, "must be in (0, 1]")
        _require(self.learning_starts >= 0, "learning_starts", self.learning_starts, "must be >= 0")
        _require(
            self.target_entropy is None or math.isfinite(self.target_entropy),
            "target_entropy",
            self.target_entropy,
            "must be a finite number or None",
        )
        ok_alpha = math.isfinite(self.init_alpha) and self.init_alpha > 0
        _require(ok_alpha, "init_alpha", self.init_alpha, "must be > 0")
        _require(self.policy_frequency >= 1, "policy_frequency", self.policy_frequency, "must be >= 1")
        _require(
            self.matmul_precision in ("float32", "bfloat16"),
            "matmul_precision",
            self.matmul_precision,
            "must be 'float32' or 'bfloat16'",
        )
        _require(
            self.log_freq >= 1 and self.log_freq % self.num_envs == 0,
            "log_freq",
            self.log_freq,
            f"must be a positive multiple of num_envs={self.num_envs}",
        )
        for name in ("eval_freq", "checkpoint_freq"):
            value = getattr(self, name)
            _require(value % self.log_freq == 0, name, value, f"multiple of log_freq={self.log_freq} needed")


@dataclass
class HNPGConfig(BaseConfig):
    """Hybrid natural policy gradient: on-policy NPG with a critic fit on online and offline data.

    ``learning_rate`` is the critic's Adam step size; ``hidden_sizes`` the critic's layers and
    ``policy_hidden_sizes`` the policy's. ``finite_horizon`` switches to one policy and one critic per
    step ``h < horizon`` (spec: hybrid-and-sac.md).
    """

    algo: ClassVar[str] = "hnpg"

    offline_dataset: str | None = _f(None, "required: Minari dataset id or path")
    offline_root: str | None = _f(None, "dataset root (default: $MINARI_DATASETS_PATH)")
    n_steps: int = _f(1000, "on-policy env steps per iteration")
    offline_batch: int = _f(1000, "offline transitions drawn per iteration")
    gae_lambda: float = _f(0.97, "GAE lambda")
    policy_hidden_sizes: tuple[int, ...] = _f((64, 64), "the policy's hidden layer widths")
    critic_steps: int = _f(30, "critic gradient steps per iteration")
    critic_batch: int = _f(256, "per critic step, from each of the on-policy and offline parts")
    td_weight: float = _f(1.0, "lambda: weight of the offline TD loss against the MC loss")
    v_samples: int = _f(10, "actions averaged for V(s) = E_a~pi Q(s, a) on offline states")
    cg_iters: int = _f(10, "conjugate-gradient iterations of the natural-gradient step")
    cg_damping: float = _f(0.1, "damping added to the Fisher-vector products")
    max_kl: float = _f(0.01, "trust-region radius of the policy step (mean KL)")
    line_search_steps: int = _f(10, "backtracking steps of the line search")
    accept_ratio: float = _f(0.1, "accept a step once the improvement reaches this share of the expected one")
    norm_obs: bool = _f(True, "normalize observations with running statistics")
    finite_horizon: bool = _f(False, "one policy and one critic per step h < horizon")
    horizon: int = _f(0, "H for finite_horizon (the lock's horizon)")

    def __post_init__(self) -> None:
        self.policy_hidden_sizes = tuple(int(h) for h in self.policy_hidden_sizes)
        super().__post_init__()

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["policy_hidden_sizes"] = list(self.policy_hidden_sizes)
        return out

    def validate(self) -> None:
        super().validate()
        _require(bool(self.offline_dataset), "offline_dataset", self.offline_dataset,
                 "HNPG needs an offline dataset (a Minari id or path)")
        for name in ("n_steps", "offline_batch", "critic_steps", "critic_batch", "v_samples", "cg_iters",
                     "line_search_steps"):
            _require(getattr(self, name) >= 1, name, getattr(self, name), "must be >= 1")
        _require(self.n_steps % self.num_envs == 0, "n_steps", self.n_steps,
                 f"must be divisible by num_envs={self.num_envs}")
        _require(0.0 <= self.gae_lambda <= 1.0, "gae_lambda", self.gae_lambda, "must be in [0, 1]")
        _require(
            len(self.policy_hidden_sizes) >= 1 and all(h >= 1 for h in self.policy_hidden_sizes),
            "policy_hidden_sizes", self.policy_hidden_sizes, "must be a non-empty list of positive layer widths",
        )
        _require(math.isfinite(self.td_weight) and self.td_weight >= 0, "td_weight", self.td_weight, "must be >= 0")
        _require(self.cg_damping >= 0, "cg_damping", self.cg_damping, "must be >= 0")
        _require(self.max_kl > 0, "max_kl", self.max_kl, "must be > 0")
        _require(0 < self.accept_ratio <= 1, "accept_ratio", self.accept_ratio, "must be in (0, 1]")
        _require(not self.finite_horizon or self.horizon >= 1, "horizon", self.horizon,
                 "finite_horizon needs horizon >= 1 (the episode length)")


