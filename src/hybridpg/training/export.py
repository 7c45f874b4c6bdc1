"""``hybridpg export``: a run's policy as plain tensors plus a JSON, loadable without hybridpg.

Writes ``policy.pt`` (a ``torch.save`` dict of tensors; ``policy.safetensors`` with
``--format safetensors``) and ``policy.json`` (layer shapes, activation, observation
normalization, action space and bounds). The checkpoint is read directly: no agent is built, so
neither an offline dataset nor the training envs are needed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from hybridpg.errors import CheckpointError, ConfigError
from hybridpg.training.checkpoint import atomic_write_bytes, load_checkpoint

ON_POLICY = ("ppo", "ppo-buffer", "props", "ros")
EXPORT_FORMAT = "hybridpg-policy-v1"


def _layers(policy: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, weight, bias) of the policy MLP's Linear layers, in order (tanh between them)."""
    indices = sorted({int(k.split(".")[1]) for k in policy if k.startswith("net.") and k.endswith(".weight")})
    return [(f"layers.{i}", policy[f"net.{idx}.weight"], policy[f"net.{idx}.bias"]) for i, idx in enumerate(indices)]


def _action_space(state: dict[str, Any]) -> gym.Space[Any]:
    """The action space with its bounds (checkpoints keep only its shape): from the env itself."""
    from hybridpg.envs.vector import make_env_fn

    env = make_env_fn(state["env_id"], **(state["config"].get("env_kwargs") or {}))()
    try:
        return env.action_space
    finally:
        env.close()


def export_policy(source: str | Path, out: str | Path, fmt: str = "torch") -> Path:
    """Write the policy of a run folder or checkpoint to ``out``; returns the JSON's path."""
    if fmt not in ("torch", "safetensors"):
        raise ConfigError(f"--format {fmt}: choose torch or safetensors")
    state = load_checkpoint(source)
    algo = state["algo"]
    if algo not in ON_POLICY:
        raise CheckpointError(f"export supports {', '.join(ON_POLICY)} policies; {source} holds a {algo} agent")
    layers = _layers(state["algo_state"]["policy"])
    space = _action_space(state)
    norm = state["obs_norm"]
    tensors: dict[str, torch.Tensor] = {}
    for name, weight, bias in layers:
        tensors[f"{name}.weight"] = weight.detach().float().contiguous()
        tensors[f"{name}.bias"] = bias.detach().float().contiguous()
    if norm["enabled"]:
        tensors["obs_mean"] = norm["rms"]["mean"].double().contiguous()
        tensors["obs_var"] = norm["rms"]["var"].double().contiguous()
    if isinstance(space, gym.spaces.Box):
        action: dict[str, Any] = {
            "type": "box", "shape": list(space.shape), "low": np.asarray(space.low, float).tolist(),
            "high": np.asarray(space.high, float).tolist(),
            "deterministic": "the last layer's output (the Gaussian mean), clipped to [low, high]",
        }
    else:
        assert isinstance(space, gym.spaces.Discrete)
        action = {"type": "discrete", "n": int(space.n), "deterministic": "argmax of the last layer's output"}
    out = Path(out)
    weights = out / ("policy.safetensors" if fmt == "safetensors" else "policy.pt")
    meta = {
        "format": EXPORT_FORMAT,
        "algo": algo,
        "env_id": state["env_id"],
        "global_step": int(state["global_step"]),
        "weights": weights.name,
        "layers": [{"name": n, "in": int(w.shape[1]), "out": int(w.shape[0])} for n, w, _ in layers],
        "activation": "tanh",  # between layers, none after the last
        "obs_shape": list(norm["rms"]["mean"].shape),
        "obs_norm": {
            "enabled": bool(norm["enabled"]), "clip": float(norm["clip"]), "eps": 1e-8,
            "formula": "clip((obs - obs_mean) / sqrt(obs_var + eps), -clip, clip), in float64, then float32",
        },
        "action": action,
    }
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
            import io

            buffer = io.BytesIO()
            torch.save(tensors, buffer)
            atomic_write_bytes(weights, buffer.getvalue())
        atomic_write_bytes(out / "policy.json", (json.dumps(meta, indent=2) + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"cannot write the export to {out}: {exc.strerror or exc}") from None
    return out / "policy.json"


def handle(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else Path(args.run) / "export"
    path = export_policy(args.run, out, args.format)
    print(f"wrote {path.parent / json.loads(path.read_text())['weights']} and {path}")
    return 0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export", help="write a run's policy as a plain torch state dict + JSON (no hybridpg needed to load)",
        description="Write the policy network, its observation normalization and the action bounds as plain "
                    "tensors (policy.pt, or policy.safetensors) and policy.json (shapes, activation, bounds).",
    )
    parser.add_argument("run", type=Path, help="run folder (final.pt, else latest.pt) or a checkpoint file")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN/export)")
    parser.add_argument("--format", choices=["torch", "safetensors"], default="torch")
    parser.set_defaults(func=handle)
