"""Typed, validated configuration: one dataclass per algorithm.

Validation happens in ``__post_init__`` so that a bad value is reported at construction, with one
line naming the field and the reason, long before any environment is built.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from hybridpg.errors import ConfigError


def _require(ok: bool, name: str, value: Any, reason: str) -> None:
    if not ok:
        raise ConfigError(f"config field '{name}'={value!r}: {reason}")


#: sizes past these cannot be allocated or run on any machine this library targets; refused up front
_INT_CAP = 10**9
_INT_CAPS = {"n_steps": 10**8, "buffer_size": 10**8, "torch_threads": 1024, "num_envs": 4096, "batch_size": 10**7}
_WIDTH_CAP = 65536


def _f(default: Any, help: str) -> Any:
    """A config field with its one-line description (shown by ``hybridpg train --help``)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class BaseConfig:
    """Fields shared by every algorithm: environments, networks, logging and checkpoints."""

    algo: ClassVar[str] = "base"
    #: Box-only algorithms set this; checked against the env's action space.
    box_only: ClassVar[bool] = False

    num_envs: int = _f(1, "parallel envs; step counts are over all of them")
    async_envs: bool = _f(False, "step the envs in subprocesses (gymnasium AsyncVectorEnv)")
    gamma: float = _f(0.99, "discount factor")
    learning_rate: float = _f(3e-4, "Adam step size of the main networks")
    hidden_sizes: tuple[int, ...] = _f((64, 64), "hidden layer widths, e.g. 64,64")
    eval_freq: int = _f(10, "evaluate every this many updates (0: only at the end)")
    eval_episodes: int = _f(10, "deterministic episodes per evaluation")
    checkpoint_freq: int = _f(10, "write checkpoints/latest.pt every this many updates (0: only at the end)")
    torch_threads: int = _f(1, "torch intra-op threads")
    device: str = _f("cpu", "cpu, cuda or auto")
    # saved with the run, so resume, evaluation and load rebuild the same env
    env_kwargs: dict[str, Any] = _f({}, "gym.make keywords, e.g. ctrl_cost_weight=0.5,frame_skip=4")

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        self._check_ranges()
        self.validate()

    def _check_ranges(self) -> None:
        """Every number finite and of a size this library can run, before any field's own rule."""
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value, kind = getattr(self, f.name), hints[f.name]
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, float) or kind in (float, float | None):
                ok = isinstance(value, int | float) and math.isfinite(value)
                _require(ok, f.name, value, "must be a finite number")
            elif isinstance(value, int):
                cap = _INT_CAPS.get(f.name, _INT_CAP)
                _require(-cap <= value <= cap, f.name, value, f"must be at most {cap:,} in size")
        for name in ("hidden_sizes", "policy_hidden_sizes"):
            widths = getattr(self, name, ())
            _require(all(w <= _WIDTH_CAP for w in widths), name, widths, f"layer widths must be at most {_WIDTH_CAP:,}")

    def validate(self) -> None:
        _require(self.num_envs >= 1, "num_envs", self.num_envs, "must be >= 1")
        _require(0.0 < self.gamma <= 1.0, "gamma", self.gamma, "must be in (0, 1]")
        _require(
            math.isfinite(self.learning_rate) and self.learning_rate > 0,
            "learning_rate",
            self.learning_rate,
            "must be > 0",
        )
        _require(
            len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
            "hidden_sizes",
            self.hidden_sizes,
            "must be a non-empty list of positive layer widths",
        )
        _require(self.eval_freq >= 0, "eval_freq", self.eval_freq, "must be >= 0 (0 disables evaluation)")
        _require(self.eval_episodes >= 1, "eval_episodes", self.eval_episodes, "must be >= 1")
        _require(
            self.checkpoint_freq >= 0, "checkpoint_freq", self.checkpoint_freq, "must be >= 0 (0 = final only)"
        )
        _require(self.torch_threads >= 1, "torch_threads", self.torch_threads, "must be >= 1")
        _require(self.device in ("cpu", "cuda", "auto"), "device", self.device, "must be cpu, cuda or auto")
        _require(
            isinstance(self.env_kwargs, dict) and all(isinstance(k, str) and k for k in self.env_kwargs),
            "env_kwargs",
            self.env_kwargs,
            "must be a mapping of keyword names to values, e.g. ctrl_cost_weight=0.5,frame_skip=4",
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BaseConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            owners = [c.algo for c in CONFIGS.values() if unknown[0] in c.__dataclass_fields__]
            where = f" (a field of {', '.join(owners)})" if owners else ""
            raise ConfigError(f"{cls.algo} has no config field '{unknown[0]}'{where}"
                              + (f"; also unknown: {', '.join(unknown[1:])}" if unknown[1:] else ""))
        coerced = {k: coerce_field(cls, k, v) for k, v in values.items()}
        return cls(**coerced)

    @classmethod
    def from_saved(cls, values: dict[str, Any]) -> BaseConfig:
        """A config read back from a run (config.yaml, a checkpoint). Runs written before each
        on-policy method kept only its own fields carry PROPS's and ROS's fields too; those that
        this method does not have are dropped, as that layout ignored them."""
        own = {f.name for f in fields(cls)}
        kept = {k: v for k, v in values.items() if k in own or k not in _RETIRED_ON_POLICY_FIELDS}
        return cls.from_dict(kept)


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


#: fields every on-policy config carried before PPO's, PROPS's and ROS's configs held only their own
_RETIRED_ON_POLICY_FIELDS = frozenset({
    "behavior", "behavior_steps", "props_lr", "props_epochs", "props_minibatches", "props_clip",
    "props_lambda", "props_target_kl", "props_stale_reference", "ros_lr",
})


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


def coerce_field(cls: type[BaseConfig], name: str, value: Any) -> Any:
    """Turn a string from the CLI or YAML into the field's declared type, with a clear error."""
    hints = typing.get_type_hints(cls)
    if name not in hints:
        raise ConfigError(f"unknown config field '{name}' for {cls.algo}")
    target = hints[name]
    if target == dict[str, Any]:
        return _env_kwargs(name, value)
    if not isinstance(value, str):
        if target == tuple[int, ...] and isinstance(value, list | tuple):
            return tuple(int(v) for v in value)
        if target == tuple[int, ...]:  # e.g. `hidden_sizes: 64` in YAML
            raise ConfigError(f"config field '{name}'={value!r}: must be a list of integers, e.g. 64,64")
        if target is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    try:
        origin = typing.get_origin(target)
        if origin in (types.UnionType, typing.Union):
            args = [a for a in typing.get_args(target) if a is not type(None)]
            if text.lower() in ("none", "null", ""):
                return None
            target = args[0]
        if target is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if target is int:
            try:
                return int(text)
            except ValueError:
                as_float = float(text)  # accept 1e5 style, but only for whole numbers
                if not as_float.is_integer():
                    raise
                return int(as_float)
        if target is float:
            return float(text)
        if target == tuple[int, ...]:
            return tuple(int(p) for p in text.replace("(", "").replace(")", "").split(",") if p.strip())
        return text
    except ValueError as exc:
        kind = getattr(target, "__name__", target)
        raise ConfigError(f"config field '{name}'={value!r}: not a valid {kind}") from exc


def parse_key_values(items: Iterable[str], what: str) -> dict[str, Any]:
    """``key=value`` items (env keywords from the CLI). A value becomes an int, float, bool or None
    where it reads as one (``1e-3`` is a float, ``false`` a bool), and stays text otherwise."""
    out: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in items)):
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: {item!r} is not key=value")
        out[key.strip()] = _scalar(text.strip())
    return out


def _scalar(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)


def _env_kwargs(name: str, value: Any) -> dict[str, Any]:
    """A mapping as it is (YAML, the API) or ``key=value,key=value`` text."""
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str):
        raise ConfigError(f"config field '{name}'={value!r}: must be a mapping, e.g. key=value,key=value")
    return parse_key_values(value.split(","), f"config field '{name}'={value!r}")


CONFIGS: dict[str, type[BaseConfig]] = {
    "ppo": PPOConfig,
    "ppo-buffer": PPOBufferConfig,
    "props": PROPSConfig,
    "ros": ROSConfig,
}


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


CONFIGS["sac"] = SACConfig


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


CONFIGS["hnpg"] = HNPGConfig
