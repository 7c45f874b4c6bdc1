"""``hybridpg collect``: roll a policy out and write the episodes as a Minari dataset.

Policies: ``random`` (uniform over the action space), ``lock-optimal`` (the combination lock's
scripted policy, epsilon-greedy) or a run folder (its saved agent's ``predict``, deterministic
unless ``--stochastic``, with a uniformly random action with probability ``--epsilon``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from minari.dataset.minari_dataset import parse_dataset_id

from hybridpg.config import parse_key_values
from hybridpg.data.datasets import collect_episodes, default_root, write_dataset
from hybridpg.envs.vector import make_env_fn
from hybridpg.errors import ConfigError, DatasetError

Policy = Callable[[np.ndarray], Any]


def _epsilon_greedy(policy: Policy, space: gym.Space[Any], epsilon: float, seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    space.seed(seed)

    def act(obs: np.ndarray) -> Any:
        return space.sample() if epsilon > 0 and rng.random() < epsilon else policy(obs)

    return act


def make_policy(name: str, env: gym.Env[Any, Any], epsilon: float, seed: int, stochastic: bool) -> Policy:
    """The acting function for ``--policy NAME`` on ``env``."""
    if not 0.0 <= epsilon <= 1.0:
        raise ConfigError(f"--epsilon={epsilon}: must be in [0, 1]")
    if name == "random":
        return lambda obs: env.action_space.sample()
    if name == "lock-optimal":
        from hybridpg.envs.lock import LockOptimalPolicy

        try:
            return LockOptimalPolicy(env, epsilon=epsilon, seed=seed)
        except TypeError:
            spec_id = env.spec.id if env.spec is not None else type(env).__name__
            raise ConfigError(f"--policy lock-optimal needs a combination lock env, not {spec_id}") from None
    run_dir = Path(name)
    if not run_dir.exists():
        raise ConfigError(f"--policy {name!r}: not random, lock-optimal or an existing run folder")
    from hybridpg.algorithms.base import Agent

    agent = Agent.load(run_dir)
    agent.close()  # only predict() is needed; it uses no env
    if (
        agent.observation_space.shape != env.observation_space.shape
        or type(agent.action_space) is not type(env.action_space)
        or agent.action_space.shape != env.action_space.shape
    ):
        raise ConfigError(
            f"the agent in {run_dir} was trained on {agent.env_id}; its spaces do not fit this env"
        )

    def act(obs: np.ndarray) -> Any:
        return agent.predict(obs, deterministic=not stochastic)[0]

    return _epsilon_greedy(act, env.action_space, epsilon, seed)


def _check_writable(root: Path, name: str) -> None:
    """Fail before the rollout, not after it, when the dataset root cannot be created or written;
    the folders this check creates are removed again, so a failed command leaves nothing."""
    chain = [root, *root.parents]
    created: list[Path] = []
    try:
        depth = next(i for i, p in enumerate(chain) if p.exists())  # "/" always does
        if not chain[depth].is_dir():
            what = "" if depth == 0 else f": {chain[depth]}"
            raise DatasetError(f"{name} {root}{what} is a file, not a folder")
        missing = chain[:depth]
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        fd, probe = tempfile.mkstemp(prefix=".hybridpg-write-test.", dir=root)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != root else ""
        raise DatasetError(f"{name} {root}: cannot create or write this folder{where}: {exc.strerror or exc}") from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()


def collect(args: argparse.Namespace) -> int:
    if args.episodes < 1:
        raise ConfigError(f"--episodes={args.episodes}: must be >= 1")
    try:
        parse_dataset_id(args.dataset_id)
    except (ValueError, TypeError):
        raise DatasetError(
            f"invalid dataset id {args.dataset_id!r}: use 'name-v0' or 'namespace/name-v0'"
        ) from None
    root = Path(args.out).expanduser().resolve() if args.out else default_root()
    _check_writable(root, "--out" if args.out else "the dataset root")
    if (root / args.dataset_id).exists():
        raise DatasetError(
            f"dataset {args.dataset_id!r} already exists in {root}; choose another --dataset-id"
        )
    # train's form (--env-kwargs a=1,b=2) and the repeatable --env-kwarg a=1 both work
    kwargs = {**parse_key_values(args.env_kwargs.split(","), "--env-kwargs"),
              **parse_key_values(args.env_kwarg, "--env-kwarg")}
    # an unknown keyword fails in the factory with one error line
    env = make_env_fn(args.env, **kwargs)()
    try:
        policy = make_policy(args.policy, env, args.epsilon, args.seed, args.stochastic)
        episodes = collect_episodes(
            env, policy, args.episodes, seed=args.seed, max_episode_steps=args.max_episode_steps
        )
        # env.spec carries the constructor kwargs (e.g. the lock's horizon) into the metadata
        path = write_dataset(
            args.dataset_id,
            episodes,
            env.spec,
            env.observation_space,
            env.action_space,
            root=root,
            algorithm_name=f"hybridpg collect --policy {args.policy} --epsilon {args.epsilon}",
        )
    finally:
        env.close()
    returns = [float(e.rewards.sum()) for e in episodes]
    steps = sum(len(e) for e in episodes)
    print(f"wrote {len(episodes)} episodes ({steps} steps, mean return {np.mean(returns):.3f}) to {path}")
    return 0


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "collect",
        help="roll a policy out and write a Minari dataset",
        description="Roll a policy out and write the episodes as a Minari dataset.",
    )
    parser.add_argument("--env", required=True, help="Gymnasium id")
    parser.add_argument(
        "--env-kwarg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env constructor argument, repeatable (e.g. horizon=10 for the lock)",
    )
    parser.add_argument(
        "--env-kwargs", default="", metavar="DICT",
        help="env constructor arguments as train takes them, e.g. horizon=10,noise_std=0.05",
    )
    parser.add_argument(
        "--policy",
        required=True,
        metavar="{random,lock-optimal,RUN_DIR}",
        help="random, lock-optimal (combination lock only) or a run folder",
    )
    parser.add_argument("--epsilon", type=float, default=0.0, help="random-action probability (default: 0)")
    parser.add_argument(
        "--stochastic", action="store_true", help="RUN_DIR policy: sample instead of the mode"
    )
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--dataset-id", required=True, help="Minari id, e.g. lock-h5-v0")
    parser.add_argument(
        "--out", default=None, help="dataset root (default: $MINARI_DATASETS_PATH or ~/.minari/datasets)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-episode-steps", type=int, default=None, help="cut episodes of envs without a limit"
    )
    parser.set_defaults(func=collect)
