"""LeanAdam's step on PPO's two 64-64 networks: flat buffers against one kernel per tensor.

Builds ``PPO(<env>)``'s policy and value networks twice with the same weights and gradients; one
optimizer keeps its flat buffers, the other has them switched off (``flat = [None]``, the
per-tensor path that re-pointed parameters fall back to). Blocks of steps alternate between the two
in one process, one torch thread; prints the median microseconds per step of each and the ratio.
The step includes the gradient clip that every PPO minibatch runs before it.

    python benchmarks/adam_step.py [--env Hopper-v5] [--blocks 20] [--steps 500]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()

    import torch

    from hybridpg.algorithms.onpolicy import PPO
    from hybridpg.networks import clip_grad_norm, make_adam

    torch.set_num_threads(1)
    agent = PPO(args.env, seed=0)
    arms = {}
    for name in ("flat", "per-tensor"):
        nets = copy.deepcopy((agent.policy, agent.value))
        params = [p for net in nets for p in net.parameters() if p.requires_grad]
        optimizer = make_adam(params, 3e-4)
        if name == "per-tensor":
            optimizer.flat = [None]  # type: ignore[attr-defined]
        gen = torch.Generator().manual_seed(1)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        arms[name] = (params, optimizer)
    agent.close()

    def block(params: list[torch.Tensor], optimizer: torch.optim.Optimizer) -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            clip_grad_norm(params, 0.5)
            optimizer.step()
        return (time.perf_counter() - start) / args.steps * 1e6

    for params, optimizer in arms.values():  # warm-up: state allocation
        block(params, optimizer)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for i in range(args.blocks):
        for name in list(arms) if i % 2 == 0 else list(arms)[::-1]:
            times[name].append(block(*arms[name]))
    flat_params, per_tensor_params = arms["flat"][0], arms["per-tensor"][0]
    for a, b in zip(flat_params, per_tensor_params, strict=True):  # the same steps were taken
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"{args.env}, PPO's policy and value networks, clip + LeanAdam step, median of {args.blocks} blocks "
          f"of {args.steps} steps, one thread")
    for name, us in med.items():
        print(f"{name}: {us:.1f} us per step")
    print(f"per-tensor / flat: {med['per-tensor'] / med['flat']:.2f}x")


if __name__ == "__main__":
    main()
