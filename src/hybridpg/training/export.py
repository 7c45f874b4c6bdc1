"""``hybridpg export``: a run's policy as plain tensors plus a JSON, loadable without hybridpg.

Writes ``policy.pt`` (a ``torch.save`` dict of tensors; ``policy.safetensors`` with
``--format safetensors``) and ``policy.json`` (layer shapes, activation, how the last layer's
output becomes an action, observation normalization, action space and bounds). The checkpoint is
read directly: no agent is built, so neither an offline dataset nor the training envs are needed.

Every network is exported as ``nn.Linear`` layers (``layers.{i}.weight`` of shape (out, in) and
``layers.{i}.bias``) with one activation between them: the on-policy and HNPG policies (tanh), SAC's
actor (ReLU; its output is the Gaussian's mean and log-std). Finite-horizon HNPG has one network
per episode step, ``heads.{h}.layers.{i}.*``.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hybridpg.errors import CheckpointError, ConfigError
from hybridpg.squash import LOG_STD_MAX, LOG_STD_MIN
from hybridpg.training.checkpoint import atomic_write_bytes, load_checkpoint

ON_POLICY = ("ppo", "ppo-buffer", "props", "ros")
SUPPORTED = (*ON_POLICY, "sac", "hnpg")
EXPORT_FORMAT = "hybridpg-policy-v1"

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # (weight (out, in), bias (out,)) per Linear layer


def _policy_layers(policy: dict[str, torch.Tensor]) -> Layers:
    """The on-policy ``Policy`` MLP's Linear layers, in order (tanh between them)."""
    indices = sorted({int(k.split(".")[1]) for k in policy if k.startswith("net.") and k.endswith(".weight")})
    return [(policy[f"net.{idx}.weight"], policy[f"net.{idx}.bias"]) for idx in indices]


def _sac_actor_layers(actor: dict[str, torch.Tensor]) -> Layers:
    """SAC's actor, a one-member ``EnsembleMLP``, as Linear layers: its first and hidden weights
    are stored (in, out) (and stacked over members), its output weight (out, in) like Linear's."""
    layers = [(actor["net.w_in"].t(), actor["net.b_in"])]
    hidden = sorted(int(k.rsplit(".", 1)[1]) for k in actor if k.startswith("net.w_hidden."))
    layers += [(actor[f"net.w_hidden.{i}"][0].t(), actor[f"net.b_hidden.{i}"][0, 0]) for i in hidden]
    return [*layers, (actor["net.w_out"][0], actor["net.b_out"][0, :, 0])]


def _action_space(state: dict[str, Any]) -> gym.Space[Any]:
    """The action space with its bounds: the checkpoint's record, else (older checkpoints) the env's."""
    record = (state.get("spaces") or {}).get("action_space")
    if record is not None:
        try:
            if record["type"] == "Discrete":
                return gym.spaces.Discrete(int(record["n"]))
            if record["type"] == "Box":
                dtype = np.dtype(str(record["dtype"]))
                low, high = np.asarray(record["low"].numpy()), np.asarray(record["high"].numpy())
                return gym.spaces.Box(low.astype(dtype), high.astype(dtype), dtype=dtype)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"the checkpoint's action space record is damaged: {exc}") from None
    from hybridpg.envs.vector import make_env_fn

    env = make_env_fn(state["env_id"], **(state["config"].get("env_kwargs") or {}))()
    try:
        return env.action_space
    finally:
        env.close()


def _networks(state: dict[str, Any]) -> tuple[dict[str, Layers], dict[str, Any]]:
    """{tensor-name prefix: layers} and the JSON fields that say how to run them."""
    algo, algo_state, config = state["algo"], state["algo_state"], state["config"]
    if algo == "sac":
        layers = _sac_actor_layers(algo_state["actor"])
        dim = int(layers[-1][0].shape[0]) // 2
        precision = str(config.get("matmul_precision", "float32"))
        return {"": layers}, {
            "activation": "relu",
            "output": f"the last layer's output is [mean (its first {dim}), log_std (its last {dim})]",
            "log_std_clamp": [LOG_STD_MIN, LOG_STD_MAX],
            "hidden_matmul": "float32" if precision == "float32" else
            f"{precision}: hidden-to-hidden matmul operands are rounded to {precision}, accumulated in float32",
        }
    if algo == "hnpg":
        heads = [_policy_layers(p) for p in algo_state["policies"]]
        fields: dict[str, Any] = {"activation": "tanh", "output": "the Gaussian mean (Box) or the logits (Discrete)"}
        if not config.get("finite_horizon") or len(heads) == 1:
            return {"": heads[0]}, fields
        fields["heads"] = {
            "count": len(heads),
            "tensors": "heads.{h}.layers.{i}.weight / .bias",
            "choice": "one network per episode step: the action at step h of an episode (h = 0 for the first "
                      f"action after reset) comes from heads.{{h}}, steps past {len(heads) - 1} use the last head; "
                      "hybridpg's predict reads h from the observation with the env's decode_observation",
        }
        return {f"heads.{h}.": layers for h, layers in enumerate(heads)}, fields
    return {"": _policy_layers(algo_state["policy"])}, {
        "activation": "tanh", "output": "the Gaussian mean (Box) or the logits (Discrete)"}


def _action(algo: str, space: gym.Space[Any]) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "discrete", "n": int(space.n), "deterministic": "argmax of the last layer's output"}
    assert isinstance(space, gym.spaces.Box)
    action: dict[str, Any] = {
        "type": "box", "shape": list(space.shape), "low": np.asarray(space.low, float).tolist(),
        "high": np.asarray(space.high, float).tolist(),
    }
    if algo == "sac":
        action["deterministic"] = (
            "a = tanh(mean) in float32, then low + (a + 1) / 2 * (high - low), computed in float64 as "
            "a * scale + bias with scale = (high - low) / 2 and bias = (high + low) / 2, then clipped to [low, high]")
        action["stochastic"] = "a = tanh(mean + exp(clamp(log_std, *log_std_clamp)) * N(0, 1)), scaled the same way"
    else:
        action["deterministic"] = "the last layer's output (the Gaussian mean), clipped to [low, high]"
    return action


def export_policy(source: str | Path, out: str | Path, fmt: str = "torch") -> Path:
    """Write the policy of a run folder or checkpoint to ``out``; returns the JSON's path."""
    if fmt not in ("torch", "safetensors"):
        raise ConfigError(f"--format {fmt}: choose torch or safetensors")
    state = load_checkpoint(source)
    algo = state["algo"]
    if algo not in SUPPORTED:
        raise CheckpointError(f"export supports {', '.join(SUPPORTED)} policies; {source} holds a {algo} agent")
    try:
        networks, fields = _networks(state)
        norm = state["obs_norm"]
        obs_shape = list(norm["rms"]["mean"].shape)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{source} does not hold a usable {algo} policy: missing {exc}") from None
    space = _action_space(state)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, layers in networks.items():
        for i, (weight, bias) in enumerate(layers):
            tensors[f"{prefix}layers.{i}.weight"] = weight.detach().float().contiguous()
            tensors[f"{prefix}layers.{i}.bias"] = bias.detach().float().contiguous()
    if norm["enabled"]:
        tensors["obs_mean"] = norm["rms"]["mean"].double().contiguous()
        tensors["obs_var"] = norm["rms"]["var"].double().contiguous()
    out = Path(out)
    weights = out / ("policy.safetensors" if fmt == "safetensors" else "policy.pt")
    first = next(iter(networks.values()))
    meta = {
        "format": EXPORT_FORMAT,
        "algo": algo,
        "env_id": state["env_id"],
        "global_step": int(state["global_step"]),
        "weights": weights.name,
        # every network (head) has these shapes; the activation is between layers, none after the last
        "layers": [{"name": f"layers.{i}", "in": int(w.shape[1]), "out": int(w.shape[0])} for i, (w, _) in
                   enumerate(first)],
        **fields,
        "obs_shape": obs_shape,
        "obs_norm": {
            "enabled": bool(norm["enabled"]), "clip": float(norm["clip"]), "eps": 1e-8,
            "formula": "clip((obs - obs_mean) / sqrt(obs_var + eps), -clip, clip), in float64, then float32",
        },
        "action": _action(algo, space),
    }
    _write(out, weights, tensors, meta, fmt)
    return out / "policy.json"


def _write(out: Path, weights: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], fmt: str) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        if fmt == "safetensors":
            try:
                from safetensors.torch import save as safetensors_save  # optional: plain torch needs nothing
            except ImportError:
                needs = "--format safetensors needs the safetensors package (pip install safetensors)"
                raise ConfigError(needs) from None
            atomic_write_bytes(weights, safetensors_save(tensors))
        else:
            buffer = io.BytesIO()
            torch.save(tensors, buffer)
            atomic_write_bytes(weights, buffer.getvalue())
        atomic_write_bytes(out / "policy.json", (json.dumps(meta, indent=2) + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"cannot write the export to {out}: {exc.strerror or exc}") from None


def handle(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else Path(args.run) / "export"
    path = export_policy(args.run, out, args.format)
    print(f"wrote {path.parent / json.loads(path.read_text())['weights']} and {path}")
    return 0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="write a run's policy as a plain torch state dict + JSON (no hybridpg needed to load)",
        description="Write the policy network (ppo, ppo-buffer, props, ros, hnpg; SAC's actor), its observation "
                    "normalization and the action bounds as plain tensors (policy.pt, or policy.safetensors) and "
                    "policy.json (shapes, activation, how the output becomes an action, bounds).",
    )
    parser.add_argument("run", type=Path, help="run folder (final.pt, else latest.pt) or a checkpoint file")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/export)")
    parser.add_argument("--format", choices=["torch", "safetensors"], default="torch")
    parser.set_defaults(func=handle)
