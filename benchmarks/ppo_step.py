"""Time PPO's (or PROPS's behavior) minibatch step alone (no env steps), to compare code versions.

Builds ``PPO(<env>, n_steps=2048, target_kl=None)`` (32 minibatches of 64, 10 epochs, 64-64 tanh;
no KL stop, so every call runs all its steps), fills its update's input with fixed random data of
the env's shapes, and times whole ``_ppo_update`` calls (320 minibatch steps each: forward, loss,
backward, clip, LeanAdam), each from the same networks, optimizer state and shuffle seed. It prints
microseconds per minibatch step as the process's CPU time (which other jobs on a shared machine
inflate less than wall-clock) and wall-clock, median over ``--repeats`` calls, one torch thread.

``--update props`` times PROPS's behavior update instead: ``props_update`` on a full buffer of
fixed random data (b=2, n=2048, m=256: 3840 rows, 16 epochs of 16 minibatches of 240, no KL
stop), phi's network, loss, backward, clip and LeanAdam per step.

``--kernel compiled`` builds the agent with ``compile=True``; the untimed warm-up call compiles.

``--kernel tanh_mlp`` runs the policy's and the value network's MLPs through
``benchmarks/tanh_mlp.py`` (one autograd node per network, written-out backward) instead of
their own forward, without changing the library.

``--compare OLD_SRC`` runs this script in fresh processes, alternating the current checkout's
``src`` with ``OLD_SRC`` (e.g. a ``git worktree`` of an older commit); ``--compare-kernels``
alternates ``--kernel autograd`` with ``--kernel tanh_mlp`` on the current checkout. Either runs
``--pairs`` pairs and prints the medians of the per-process medians and the ratio A / B:

    git worktree add /tmp/hybridpg-old HEAD~1
    python benchmarks/ppo_step.py --compare /tmp/hybridpg-old/src --pairs 5
    python benchmarks/ppo_step.py --compare /tmp/hybridpg-old/src --kernel compiled --old-kernel compiled
    python benchmarks/ppo_step.py --compare-kernels --pairs 6
    python benchmarks/ppo_step.py --env CartPole-v1 --compare-kernels --pairs 6
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def use_tanh_mlp(net: Any) -> None:
    """Route ``net`` (a Linear/Tanh ``nn.Sequential``) through ``tanh_mlp``."""
    import torch
    from tanh_mlp import plain_tanh_mlp, tanh_mlp  # benchmarks/tanh_mlp.py: the kernel under test
    from torch import nn

    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert all(isinstance(m, nn.Tanh) for m in net if not isinstance(m, nn.Linear)), net
    params = tuple(p for m in linears for p in (m.weight, m.bias))
    # a timing is only worth having for a kernel that computes the same output and gradients
    x = torch.randn(64, linears[0].in_features, requires_grad=True)
    ours, ref = tanh_mlp(x, params), plain_tanh_mlp(x, params)
    torch.testing.assert_close(ours, ref)
    grads = [torch.autograd.grad(out.sum(), (x, *params)) for out in (ours, ref)]
    for g_ours, g_ref in zip(*grads, strict=True):
        torch.testing.assert_close(g_ours, g_ref)
    net.forward = lambda x: tanh_mlp(x, params)


def random_rows(agent: Any, n: int, gen: Any) -> tuple[Any, Any]:
    """``n`` random observations and actions of the agent's env's shapes."""
    import gymnasium as gym
    import torch

    obs = torch.randn(n, agent.obs_dim, generator=gen)
    if isinstance(agent.action_space, gym.spaces.Box):
        return obs, torch.randn(n, agent.policy.action_dim, generator=gen)
    return obs, torch.randint(0, agent.policy.action_dim, (n,), generator=gen).float()


def measure_props(env_id: str, repeats: int, seed: int, kernel: str) -> dict[str, Any]:
    import dataclasses

    import torch

    import hybridpg
    from hybridpg.algorithms.onpolicy import PROPS
    from hybridpg.algorithms.props import props_update

    assert kernel in ("autograd", "compiled"), kernel
    compiled = {"compile": True} if kernel == "compiled" else {}  # older code has no such setting
    agent = PROPS(env_id, n_steps=2048, seed=seed, **compiled)
    sampler = agent.sampler
    cfg = dataclasses.replace(sampler.cfg, props_target_kl=1e9)  # every call runs all its steps
    n = cfg.buffer_batches * cfg.n_steps - cfg.behavior_steps
    gen = torch.Generator().manual_seed(seed)
    obs, actions = random_rows(agent, n, gen)

    def call() -> float:
        sampler.behavior.load_state_dict(agent.policy.state_dict())
        return props_update(sampler.behavior, sampler.reference, sampler.optimizer, obs, actions, cfg,
                            sampler.generator)["props/grad_steps"]

    call()  # warm-up (allocator, optimizer state, compiling)
    start = {"optimizer": copy.deepcopy(sampler.optimizer.state_dict()), "rng": sampler.generator.get_state()}
    cpu, wall = [], []
    for _ in range(repeats):
        sampler.optimizer.load_state_dict(start["optimizer"])
        sampler.generator.set_state(start["rng"])
        t0, c0 = time.perf_counter(), time.process_time()
        steps = call()
        cpu.append((time.process_time() - c0) / steps * 1e6)
        wall.append((time.perf_counter() - t0) / steps * 1e6)
    agent.close()
    return {"source": str(Path(hybridpg.__file__).parent.parent), "kernel": kernel, "update": "props",
            "steps_per_call": steps, "cpu_us": statistics.median(cpu), "wall_us": statistics.median(wall)}


def measure(env_id: str, repeats: int, seed: int, kernel: str, update: str = "ppo") -> dict[str, Any]:
    import torch

    import hybridpg
    from hybridpg.algorithms.onpolicy import PPO

    torch.set_num_threads(1)
    if update == "props":
        return measure_props(env_id, repeats, seed, kernel)
    compiled = {"compile": True} if kernel == "compiled" else {}  # older code has no such setting
    agent = PPO(env_id, n_steps=2048, target_kl=None, seed=seed, **compiled)
    if kernel == "tanh_mlp":
        use_tanh_mlp(agent.policy.net)
        use_tanh_mlp(agent.value.net)
    n = agent.config.n_steps
    gen = torch.Generator().manual_seed(seed)
    obs, actions = random_rows(agent, n, gen)
    with torch.no_grad():
        logp, _ = agent.policy.log_prob(obs, actions)
    values = torch.randn(n, generator=gen)
    data = {
        "obs": obs,
        "actions": actions,
        "logp": logp + 0.01 * torch.randn(n, generator=gen),
        "values": values,
        "advantages": torch.randn(n, generator=gen),
        "returns": values + torch.randn(n, generator=gen),
    }
    steps = agent.config.n_epochs * (n // (n // agent.config.n_minibatches))
    agent._ppo_update(data)  # warm-up (allocator, optimizer state)
    start: dict[str, Any] = {
        "policy": copy.deepcopy(agent.policy.state_dict()),
        "value": copy.deepcopy(agent.value.state_dict()),
        "optimizer": copy.deepcopy(agent.optimizer.state_dict()),
        "rng": agent.torch_rng.get_state(),
    }
    cpu, wall = [], []
    for _ in range(repeats):
        agent.policy.load_state_dict(start["policy"])
        agent.value.load_state_dict(start["value"])
        agent.optimizer.load_state_dict(start["optimizer"])
        agent.torch_rng.set_state(start["rng"])
        t0, c0 = time.perf_counter(), time.process_time()
        agent._ppo_update(data)
        cpu.append((time.process_time() - c0) / steps * 1e6)
        wall.append((time.perf_counter() - t0) / steps * 1e6)
    agent.close()
    return {
        "source": str(Path(hybridpg.__file__).parent.parent),
        "kernel": kernel,
        "steps_per_call": steps,
        "cpu_us": statistics.median(cpu),
        "wall_us": statistics.median(wall),
    }


def compare(arms: dict[str, tuple[str, str]], env_id: str, pairs: int, repeats: int, update: str) -> None:
    """Alternate processes of two arms ``name -> (src, kernel)``, A first in odd pairs, B first in even."""
    (a, b) = arms
    runs: dict[str, list[dict[str, Any]]] = {a: [], b: []}
    for i in range(pairs):
        for name in (a, b) if i % 2 == 0 else (b, a):
            src, kernel = arms[name]
            env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
            cmd = [sys.executable, __file__, "--env", env_id, "--repeats", str(repeats), "--kernel", kernel,
                   "--update", update, "--json"]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            assert result["source"] == str(Path(src).resolve()), (result["source"], src)
            runs[name].append(result)
            print(f"pair {i + 1} {name}: cpu {result['cpu_us']:.0f} us, wall {result['wall_us']:.0f} us", flush=True)
    cpu = {name: statistics.median(r["cpu_us"] for r in runs[name]) for name in runs}
    wall = {name: statistics.median(r["wall_us"] for r in runs[name]) for name in runs}
    print(f"\n{env_id}, {update} update, {pairs} alternated process pairs, {repeats} updates each, "
          "us per minibatch step")
    print("| arm | CPU us (median) | CPU min-max | wall us (median) |")
    print("|---|---|---|---|")
    for name in runs:
        vals = [r["cpu_us"] for r in runs[name]]
        print(f"| {name} | {cpu[name]:.0f} | {min(vals):.0f}-{max(vals):.0f} | {wall[name]:.0f} |")
    print(f"speed-up {a}/{b}: CPU {cpu[a] / cpu[b]:.2f}x, wall {wall[a] / wall[b]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--repeats", type=int, default=5, help="timed _ppo_update calls per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kernel", choices=["autograd", "tanh_mlp", "compiled"], default="autograd")
    parser.add_argument("--update", choices=["ppo", "props"], default="ppo", help="PPO's update or PROPS's")
    parser.add_argument("--against", choices=["tanh_mlp", "compiled"], default="tanh_mlp",
                        help="the second arm of --compare-kernels")
    parser.add_argument("--compare", metavar="OLD_SRC", help="alternate processes with this src against ours")
    parser.add_argument("--compare-kernels", action="store_true", help="alternate --kernel autograd / --against")
    parser.add_argument("--old-kernel", choices=["autograd", "compiled"], default="autograd",
                        help="the kernel of --compare's old arm (compiled: time two versions of the compiled step)")
    parser.add_argument("--pairs", type=int, default=5, help="alternated old/new process pairs (--compare)")
    parser.add_argument("--json", action="store_true", help="print one JSON line (used by --compare)")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    if args.compare:
        arms = {"old": (args.compare, args.old_kernel), "new": (here, args.kernel)}
        compare(arms, args.env, args.pairs, args.repeats, args.update)
        return
    if args.compare_kernels:
        arms = {"autograd": (here, "autograd"), args.against: (here, args.against)}
        compare(arms, args.env, args.pairs, args.repeats, args.update)
        return
    result = measure(args.env, args.repeats, args.seed, args.kernel, args.update)
    if args.json:
        print(json.dumps(result))
    else:
        cpu_us, wall_us = result["cpu_us"], result["wall_us"]
        print(f"{args.env} {args.update} ({args.kernel}): {cpu_us:.0f} us CPU, {wall_us:.0f} us wall "
              "per minibatch step")


if __name__ == "__main__":
    main()
