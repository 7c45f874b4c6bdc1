"""Several seeds of one on-policy setting (PPO, PPO-Buffer, PROPS, ROS) trained in one process.

Each seed is an ordinary agent: its own envs, normalizers, buffer, RNG streams, sampler, optimizer
state and run folder, with the files a single run writes. What the seeds share is the arithmetic:
their networks are stacked (``hybridpg.stacked``, each seed's parameters a view of its row), so
acting, the PPO update and PROPS's behavior update run once for all seeds as batched matmuls
(``seed_updates.py``), with per-seed KL early stops as masks. The seeds move in lockstep: every
seed collects the same chunk, updates at the same step and stops at the same safe point. A seed's
run folder and checkpoints are those of a single run, so ``--resume`` of one seed alone, ``eval``
and ``compare`` treat it as one.

    batch = SeedBatch.create(PROPS, "Hopper-v5", seeds=range(10))
    batch.learn(100_000, run_dirs=[f"runs/props/seed{k}" for k in range(10)])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridpg.algorithms.base import Agent
from hybridpg.algorithms.behavior import PROPSSampling, ROSSampling
from hybridpg.algorithms.onpolicy import OnPolicyAgent
from hybridpg.algorithms.seed_updates import ppo_update_seeds, props_update_seeds
from hybridpg.config import PROPSConfig
from hybridpg.errors import ConfigError, NonFiniteError
from hybridpg.networks import draw_noise
from hybridpg.stacked import StackedAdam, StackedMLP, StackedPolicy
from hybridpg.training.run import Run, StopRun, TrainingInterrupted, stop_on_signals


class SeedBatch:
    """N agents of one class, env and config (seeds apart), trained as one."""

    def __init__(self, agents: Sequence[OnPolicyAgent]) -> None:
        _check_alike(agents)
        self.failures: list[str] = []  # one line per seed that diverged and left the batch
        self._left: list[OnPolicyAgent] = []  # those seeds' agents (closed with the batch)
        self._stack(agents)

    def _stack(self, agents: Sequence[OnPolicyAgent]) -> None:
        """Stack the seeds' networks and optimizer states (each seed's tensors become views of the stacks)."""
        self.agents = list(agents)
        self.policy = StackedPolicy.of([a.policy for a in agents])
        self.value = StackedMLP.of([a.value for a in agents])
        self.adam = StackedAdam([*self.policy.parameters, *self.value.parameters], [a.optimizer for a in agents],
                                [a.params for a in agents])
        samplers = [a.sampler for a in agents]
        self.behavior: StackedPolicy | None = None  # PROPS's and ROS's phi
        self.reference: StackedPolicy | None = None  # theta as PROPS's update sees it
        self.behavior_adam: StackedAdam | None = None
        if all(isinstance(s, ROSSampling) for s in samplers):
            self.behavior = StackedPolicy.of([s.behavior for s in samplers if isinstance(s, ROSSampling)])
        props = [s for s in samplers if isinstance(s, PROPSSampling)]
        if props and len(props) == len(samplers):
            self.behavior = StackedPolicy.of([s.behavior for s in props])
            self.reference = StackedPolicy.of([s.reference for s in props])
            self.behavior_adam = StackedAdam(self.behavior.parameters, [s.optimizer for s in props],
                                             [list(s.behavior.parameters()) for s in props])

    @classmethod
    def create(cls, algo: type[OnPolicyAgent], env: Any, seeds: Iterable[int], **overrides: Any) -> SeedBatch:
        """One fresh agent per seed, each built exactly as ``algo(env, seed=seed, **overrides)``."""
        agents: list[OnPolicyAgent] = []
        try:
            for seed in seeds:
                agents.append(algo(env, seed=seed, **overrides))  # type: ignore[call-arg]
            return cls(agents)
        except BaseException:
            for agent in agents:
                agent.close()
            raise

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> SeedBatch:
        """The seeds' checkpoints (files or run folders), to continue together."""
        agents: list[OnPolicyAgent] = []
        try:
            for path in paths:
                agent = Agent.load(path)
                if not isinstance(agent, OnPolicyAgent):
                    agent.close()
                    raise ConfigError(f"{path}: seeds train together only for ppo, ppo-buffer, props and ros, "
                                      f"not {agent.config.algo}")
                agents.append(agent)
            return cls(agents)
        except BaseException:
            for agent in agents:
                agent.close()
            raise

    @property
    def global_step(self) -> int:
        return self.agents[0].global_step

    # -- the run -------------------------------------------------------------------------------------
    def learn(self, total_timesteps: int, run_dirs: Sequence[str | Path] | None = None, progress: bool | None = None,
              reset: bool = True, horizon: int | None = None, batch_dir: str | Path | None = None) -> SeedBatch:
        """``Agent.learn`` for every seed at once; ``run_dirs`` gives each seed its run folder, and
        ``batch_dir`` (default: their common parent) is what an interruption names for ``--resume``."""
        self.failures = []
        if run_dirs is not None and len(run_dirs) != len(self.agents):
            raise ConfigError(f"{len(run_dirs)} run folders for {len(self.agents)} seeds")
        targets = [agent.prepare_learn(total_timesteps, None if run_dirs is None else run_dirs[k], reset, horizon)
                   for k, agent in enumerate(self.agents)]
        target = targets[0]
        runs: list[Run] = []
        try:
            for k, agent in enumerate(self.agents):  # one progress display: the seeds move in lockstep
                runs.append(Run(agent, agent.horizon or 0, agent.run_dir, progress if k == 0 else False,
                                stop_at=target))
            self._drive(runs, batch_dir)
        finally:
            for run in runs:
                run.close()
        if self.failures:  # the other seeds finished (or stopped) normally first
            raise NonFiniteError(f"{len(self.failures)} seed(s) diverged and stopped, keeping their last good "
                                 f"checkpoints; the others went on: {'; '.join(self.failures)}")
        return self

    def _drive(self, runs: list[Run], batch_dir: str | Path | None) -> None:
        with stop_on_signals(*runs):
            try:
                first = self.agents[0]
                if first.global_step == 0 and (first.config.eval_freq or first.config.eval_every):
                    for run in runs:  # the untrained policies: the 0% point of every learning curve
                        run.logger.log(0, run.evaluate())
                self._train(runs, first.horizon or 0)
            except StopRun:
                pass
            for run in runs:
                if run.stop_signal is None:
                    with contextlib.suppress(StopRun):  # a signal during the final evaluation
                        run.finish()
            signum = runs[0].stop_signal
            if signum is not None and not all(run.finished for run in runs):
                for run in runs:
                    if not run.finished:
                        run.save_for_stop()
                dirs = [Path(run.run_dir) for run in runs if run.run_dir is not None]
                where = Path(batch_dir) if batch_dir is not None else _common_parent(dirs)
                raise TrainingInterrupted(signum, self.global_step, where, seeds=len(runs))

    def _train(self, runs: list[Run], total_timesteps: int) -> None:
        cfg = self.agents[0].config
        chunk = [agent.start_training(run) for agent, run in zip(self.agents, runs, strict=True)][0]
        while self.global_step < total_timesteps:
            if any([run.safe_point() for run in runs]):  # every run gets its safe point (and checkpoint)
                return
            self._collect(chunk, runs)
            diverged: list[int] = []
            generators = [agent.torch_rng for agent in self.agents]
            if all([agent.update_due(chunk) for agent in self.agents]):  # lockstep: all or none
                begun = [agent.begin_update(total_timesteps) for agent in self.agents]
                updates = ppo_update_seeds(self.policy, self.value, self.adam, [data for data, _ in begun], cfg,
                                           generators)
                for k, (agent, run, (_, metrics), update) in enumerate(zip(self.agents, runs, begun, updates,
                                                                           strict=True)):
                    try:
                        agent.end_update({**metrics, **update}, run)
                    except NonFiniteError as exc:  # this seed stops; its last good checkpoint stays
                        self.failures.append(f"seed {agent.seed}: {exc}")
                        diverged.append(k)
            for agent, run, metrics in zip(self.agents, runs, self._adapt(generators), strict=True):
                if metrics:
                    run.logger.log(agent.global_step, metrics)
            if diverged:
                self._leave(diverged, runs)

    def _leave(self, seeds: list[int], runs: list[Run]) -> None:
        """Drop the seeds at these positions (their runs are closed) and stack the rest again."""
        if len(seeds) == len(self.agents):
            raise NonFiniteError(f"every seed diverged: {'; '.join(self.failures)}")
        for k in seeds:
            runs[k].close()
            self._left.append(self.agents[k])
        keep = [k for k in range(len(self.agents)) if k not in seeds]
        runs[:] = [runs[k] for k in keep]
        self._stack([self.agents[k] for k in keep])

    def _collect(self, steps: int, runs: list[Run]) -> None:
        """``OnPolicyAgent.collect`` for every seed, acting with the stacked networks."""
        agents, cfg = self.agents, self.agents[0].config
        rows = steps // cfg.num_envs
        noise = torch.stack([draw_noise(rows, cfg.num_envs, a.policy.action_dim, a.continuous, a.torch_rng)
                             for a in agents], dim=1)  # each seed's own draws: [rows, seeds, envs, ...]
        with torch.inference_mode():
            for i in range(rows):
                stacked = self._actor()
                obs_raw = [agent.vec.obs for agent in agents]
                obs = np.stack([agent.obs_norm(o) for agent, o in zip(agents, obs_raw, strict=True)])
                actions = stacked.sample(torch.from_numpy(obs.astype(np.float32)), noise[i]).numpy()
                for k, (agent, run) in enumerate(zip(agents, runs, strict=True)):
                    agent.step_envs(obs_raw[k], actions[k], run)

    def _actor(self) -> StackedPolicy:
        """Who acts for the next env step: theta, PROPS's phi, or ROS's phi after its step."""
        if self.behavior is None:
            return self.policy
        if self.reference is not None:
            return self.behavior
        # ROS (``ROSSampling.actor``) for every seed at once: phi = theta - ros_lr * grad of the mean
        # log pi_theta(a|s) over the seed's buffer; outside inference mode, which autograd needs
        with torch.inference_mode(False), torch.enable_grad():
            data = [agent.buffer_data(0) for agent in self.agents]
            if data[0][0].shape[0] == 0:
                return self.policy  # no data yet: the gradient is zero, so phi is theta
            with torch.no_grad():
                for phi, theta in zip(self.behavior.parameters, self.policy.parameters, strict=True):
                    phi.copy_(theta)
            logp, _ = self.behavior.log_prob(torch.stack([o for o, _ in data]), torch.stack([a for _, a in data]))
            trainable = [p for p in self.behavior.parameters if p.requires_grad]
            grads = torch.autograd.grad(logp.mean(-1).sum(), trainable)  # seeds are independent
            with torch.no_grad():
                for p, g in zip(trainable, grads, strict=True):
                    p.add_(g, alpha=-self.agents[0].config.ros_lr)  # type: ignore[attr-defined]
        return self.behavior

    def _adapt(self, generators: list[torch.Generator]) -> list[dict[str, float]]:
        """The samplers' update after each chunk: PROPS's for all seeds at once, the others' per seed."""
        agents = self.agents
        if self.reference is None or self.behavior is None or self.behavior_adam is None:
            return [agent.adapt_behavior() for agent in agents]
        samplers = [agent.sampler for agent in agents]
        props = [s for s in samplers if isinstance(s, PROPSSampling)]
        inputs = [s.begin_adapt(agent.buffer_data, agent.buffer.full) for s, agent in zip(props, agents, strict=True)]
        cfg = agents[0].config
        assert isinstance(cfg, PROPSConfig)
        metrics = props_update_seeds(self.behavior, self.reference, self.behavior_adam, inputs, cfg, generators)
        for s in props:
            s.end_adapt()
        return metrics

    def close(self) -> None:
        for agent in [*self.agents, *self._left]:
            agent.close()


def _check_alike(agents: Sequence[OnPolicyAgent]) -> None:
    if not agents:
        raise ConfigError("a seed batch needs at least one seed")
    first = agents[0]
    for agent in agents:
        if not isinstance(agent, OnPolicyAgent):
            raise ConfigError(f"seeds train together only for ppo, ppo-buffer, props and ros, not {agent.config.algo}")
        if type(agent) is not type(first) or agent.env_id != first.env_id:
            raise ConfigError("the seeds of a batch must share the algorithm and the env")
        if agent.config.to_dict() != first.config.to_dict():
            raise ConfigError(f"the seeds of a batch must share every setting; seed {agent.seed}'s differ from "
                              f"seed {first.seed}'s")
        if agent.global_step != first.global_step:
            steps = sorted({a.global_step for a in agents})
            raise ConfigError(f"the seeds of a batch must be at the same step, not {steps}; continue each seed's "
                              "run folder on its own with --resume")
    if first.config.offline_dataset:
        raise ConfigError("seeds with an offline dataset (BC) train one per process; drop the seed batch")
    seeds = [a.seed for a in agents]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {seeds}: each seed once")


def _common_parent(dirs: list[Path]) -> Path:
    parents = {d.parent for d in dirs}
    return parents.pop() if len(parents) == 1 else dirs[0]
