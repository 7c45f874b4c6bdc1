"""PPO, PPO-Buffer, PROPS and ROS: one on-policy code path (spec: props.md).

A sampler (``algorithms/behavior.py``) decides who collects: theta in whole batches (PPO, PPO-Buffer),
PROPS's phi (adapted every m steps so the buffer looks on-policy for theta) or ROS's phi (one gradient
step from theta before every env step). Every n steps the buffer is re-normalized, log pi_theta, V and
GAE are recomputed under the current networks, and PPO updates on all b*n transitions; its "old"
log-prob is always log pi_theta recomputed just before the update, never phi's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np
import torch

from hybridpg.algorithms.base import Agent, Run
from hybridpg.algorithms.bc import BehaviorCloner, load_offline
from hybridpg.algorithms.behavior import SAMPLERS
from hybridpg.algorithms.checks import scheduled_lr
from hybridpg.algorithms.ppo_loss import explained_variance, ppo_minibatch_loss
from hybridpg.config import OnPolicyConfig, PPOBufferConfig, PPOConfig, PROPSConfig, ROSConfig
from hybridpg.data.normalizers import RewardScaler
from hybridpg.data.rollout import HistoryBuffer, compute_gae
from hybridpg.diagnostics.sampling_error import sampling_error_metric
from hybridpg.errors import HybridPGError
from hybridpg.gradient_step import GradientStep
from hybridpg.networks import Policy, ValueNet, draw_noise, make_adam

if TYPE_CHECKING:  # the loop uses Agent's attributes; at run time it is mixed in beside Agent (one level)
    _AgentAttributes = Agent
else:
    _AgentAttributes = object


class OnPolicyAgent(_AgentAttributes):
    """The on-policy loop and update that PPO, PPO-Buffer, PROPS and ROS share (each: this + Agent)."""

    config_cls: ClassVar[type[OnPolicyConfig]] = OnPolicyConfig
    lr_schedules = True
    inference_keys = ("policy",)
    config: OnPolicyConfig

    def _build(self) -> None:
        cfg = self.config
        self.policy = Policy(self.obs_dim, self.action_space, cfg.hidden_sizes)
        self.value = ValueNet(self.obs_dim, cfg.hidden_sizes)
        self.params = [*self.policy.parameters(), *self.value.parameters()]
        self.optimizer = make_adam(self.params, cfg.learning_rate)
        self.continuous = isinstance(self.action_space, gym.spaces.Box)
        self.sampler = SAMPLERS[cfg.behavior](self.policy, cfg, self.torch_rng)  # who collects the data
        self.reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma, enabled=cfg.norm_reward)
        rows = cfg.n_steps * cfg.buffer_batches // cfg.num_envs
        self.buffer = HistoryBuffer(rows, cfg.num_envs, self.vec.obs_shape, (self.policy.action_dim,) * self.continuous)
        self.steps_since_update = 0
        self.obs_norm.update(self.vec.obs)
        self.bc = self._behavior_cloner()  # BC from an offline dataset (None without one)

    def _behavior_cloner(self) -> BehaviorCloner | None:
        cfg = self.config
        if not cfg.offline_dataset:
            return None
        try:
            data = load_offline(cfg.offline_dataset, cfg.offline_root, self.vec)  # checked eagerly
        except HybridPGError:
            self.vec.close()  # the agent is never returned to the caller, so close its envs here
            raise
        return BehaviorCloner(data, self.policy, self.value, self.obs_norm, self.reward_scaler, self.action_space,
                              cfg, self.torch_rng)

    def _act(self, obs: torch.Tensor, deterministic: bool) -> torch.Tensor:
        return self.policy.act(obs, deterministic)

    @classmethod
    def _inference_act(cls, config: Any, obs_dim: int, action_space: gym.Space[Any], algo_state: dict[str, Any],
                       env: Any) -> Callable[[torch.Tensor, bool], torch.Tensor]:
        policy = Policy(obs_dim, action_space, config.hidden_sizes)
        policy.load_state_dict(algo_state["policy"])
        return policy.act

    # -- the loop -----------------------------------------------------------------------------------
    def _train(self, run: Run, total_timesteps: int) -> None:
        chunk = self.start_training(run)
        while self.global_step < total_timesteps:
            if run.safe_point():  # checkpoints and stops happen only here, between iterations
                return
            self.collect(chunk, run)
            if self.update_due(chunk):
                data, metrics = self.begin_update(total_timesteps)
                metrics.update(self._ppo_update(data))
                self.end_update(metrics, run)
            behavior_metrics = self.adapt_behavior()
            if behavior_metrics:
                run.logger.log(self.global_step, behavior_metrics)

    def start_training(self, run: Run) -> int:
        """Warn about a budget that is no whole number of chunks, run BC's warm start once; returns
        the chunk: n env steps for the target itself, m for a behavior policy."""
        chunk = self.sampler.chunk
        left = run.stop_at - self.global_step
        if left > 0 and left % chunk:
            end = self.global_step + -(-left // chunk) * chunk
            warnings.warn(f"the run collects whole chunks of {chunk} env steps (over all envs), so it stops at "
                          f"step {end}, not {run.stop_at}", stacklevel=3)
        if self.bc is not None and not self.bc.pretrained:  # once per run (the flag survives resume)
            bc_metrics = self.bc.warm_start()
            self.sampler.restart_from_target()  # PROPS/ROS sample with phi: start it at the cloned theta
            if bc_metrics:
                run.logger.log(self.global_step, bc_metrics)
        return chunk

    def update_due(self, collected: int) -> bool:
        """Count ``collected`` env steps; True when n have been collected since the last update."""
        self.steps_since_update += collected
        return self.steps_since_update >= self.config.n_steps

    def begin_update(self, total_timesteps: int) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Everything before theta's update: the sampler's hook, the lr, the prepared buffer and the
        sampling-error diagnostic (its metrics)."""
        self.steps_since_update = 0
        self.sampler.before_target_update()
        self._set_lr(total_timesteps)
        data = self._prepare()
        return data, sampling_error_metric(self.policy, data, self.config, self.updates, total_timesteps, self.seed)

    def end_update(self, metrics: dict[str, float], run: Run) -> None:
        """Everything after theta's update: BC's online step, the count, the sampler's hook, the run."""
        if self.bc is not None:
            metrics.update(self.bc.online_step())
        self.updates += 1
        self.sampler.after_target_update()
        run.after_update(metrics)

    def collect(self, steps: int, run: Run) -> None:
        """Step the envs ``steps`` times (over all envs) with the sampler's actor into the buffer."""
        cfg = self.config
        rows = steps // cfg.num_envs
        noise = draw_noise(rows, cfg.num_envs, self.policy.action_dim, self.continuous, self.torch_rng)
        with torch.inference_mode():
            for i in range(rows):
                actor = self.sampler.actor(self.buffer_data)
                obs_raw = self.vec.obs
                obs = torch.from_numpy(self.obs_norm(obs_raw).astype(np.float32))
                actions = actor.sample(obs, noise[i]).numpy()
                self.step_envs(obs_raw, actions, run)

    def step_envs(self, obs_raw: np.ndarray, actions: np.ndarray, run: Run) -> None:
        """One step of every env with ``actions`` (taken at ``obs_raw``), stored and counted."""
        result = self.vec.step(self.vec.clip_actions(actions) if self.continuous else actions)
        self.buffer.add(obs_raw, actions, result.rewards, result.terminated, result.truncated, result.final_obs)
        self.obs_norm.update(result.obs)
        self.reward_scaler.update(result.rewards, result.terminated | result.truncated)
        self.global_step += self.config.num_envs
        if result.finished_returns:
            run.on_episodes(result.finished_returns, result.finished_lengths)

    # -- data preparation ---------------------------------------------------------------------------
    def buffer_data(self, skip_oldest: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The buffer's observations (normalized with the current statistics) and actions, oldest first."""
        idx = self.buffer.time_order(skip_oldest)
        obs = torch.from_numpy(self.obs_norm(self.buffer.obs[idx]).astype(np.float32)).reshape(-1, self.obs_dim)
        actions = torch.from_numpy(self.buffer.actions[idx].astype(np.float32))
        return obs, actions.reshape(obs.shape[0], *actions.shape[2:])

    @torch.no_grad()
    def _prepare(self) -> dict[str, torch.Tensor]:
        """Normalize the whole buffer with current statistics; recompute log-probs, values, GAE."""
        buf, cfg = self.buffer, self.config
        idx = buf.time_order()
        obs, actions = self.buffer_data(0)
        next_obs = torch.from_numpy(self.obs_norm(buf.next_obs[idx]).astype(np.float32)).reshape(-1, self.obs_dim)
        values = self.value(obs).numpy().astype(np.float64).reshape(len(idx), -1)
        next_values = self.value(next_obs).numpy().astype(np.float64).reshape(len(idx), -1)
        rewards = self.reward_scaler(buf.rewards[idx])
        adv = compute_gae(rewards, values, next_values, buf.terminated[idx], buf.truncated[idx], cfg.gamma,
                          cfg.gae_lambda)
        logp, _ = self.policy.log_prob(obs, actions)
        flat = {"values": values, "advantages": adv, "returns": adv + values}
        return {"obs": obs, "actions": actions, "logp": logp,
                **{k: torch.from_numpy(v.reshape(-1).astype(np.float32)) for k, v in flat.items()}}

    def _set_lr(self, total_timesteps: int) -> None:
        remaining = max(1.0 - (self.global_step - self.config.n_steps) / total_timesteps, 0.0)
        if self.lr_schedule is not None:  # SB3's convention: called with the fraction of the budget to go
            lr = scheduled_lr(self.lr_schedule, remaining)
        elif self.config.anneal_lr:
            lr = remaining * self.config.learning_rate
        else:
            return
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # -- the PPO update on all of D -----------------------------------------------------------------
    def _ppo_update(self, data: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.config
        n = data["obs"].shape[0]
        mb_size = max(n // cfg.n_minibatches, 1)
        # compiled, only the full buffer's size runs through the graph: earlier updates run eagerly
        full_size = cfg.full_minibatch_size
        # one gather per epoch of all per-sample columns, then cheap slices per minibatch
        columns = [data["obs"], data["actions"].reshape(n, -1),
                   *(data[k].view(n, 1) for k in ("logp", "advantages", "returns", "values"))]
        widths = [c.shape[1] for c in columns]
        packed = torch.cat(columns, dim=1)
        clip_count = torch.zeros(())
        clip_total = 0
        approx_kl = torch.zeros(())
        stats: dict[str, torch.Tensor] = {}
        epochs_run, stop = 0, False
        step = GradientStep(ppo_minibatch_loss, (self.policy, self.value), self.optimizer, cfg.max_grad_norm,
                            compile=cfg.compile)
        for _ in range(cfg.n_epochs):
            shuffled = packed[torch.randperm(n, generator=self.torch_rng)]
            epochs_run += 1
            for start in range(0, n - mb_size + 1, mb_size):
                obs, actions, old_logp, adv, ret, old_v = shuffled[start : start + mb_size].split(widths, dim=1)
                actions = actions.reshape(mb_size, *data["actions"].shape[1:])
                mb, taken = step(obs, actions, old_logp.squeeze(1), adv.squeeze(1), ret.squeeze(1),
                                 old_v.squeeze(1), cfg, rows=full_size, stop_above=cfg.target_kl)
                approx_kl = mb.approx_kl
                clip_count += mb.clipped
                clip_total += mb_size
                if not taken:
                    stop = True  # checked before the step, and it ends all epochs
                    break
                stats = {"pg": mb.policy_loss, "v": mb.value_loss, "ent": mb.entropy}
            if stop:
                break
        clipfrac = float(clip_count) / clip_total if clip_total else 0.0
        out = {
            "losses/approx_kl": float(approx_kl),
            "losses/clipfrac": clipfrac,
            "losses/explained_variance": explained_variance(data),
            "losses/epochs_run": float(epochs_run),
            "losses/early_stop": float(stop),
            "charts/learning_rate": float(self.optimizer.param_groups[0]["lr"]),
        }
        if stats:
            names = {"pg": "losses/policy_loss", "v": "losses/value_loss", "ent": "losses/entropy"}
            out.update({names[k]: float(v.detach()) for k, v in stats.items()})
        return out

    def adapt_behavior(self) -> dict[str, float]:
        """The sampler's update after each chunk (PROPS: phi from theta, adapted to the buffer)."""
        return self.sampler.adapt(self.buffer_data, self.buffer.full)

    # -- state ---------------------------------------------------------------------------------------
    def _algo_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "reward_scaler": self.reward_scaler.state_dict(),
            "buffer": self.buffer.state_dict(),
            "steps_since_update": self.steps_since_update,
        }
        if self.bc is not None:
            state["bc"] = self.bc.state_dict()
        state.update(self.sampler.state_dict())
        return state

    def _load_algo_state(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.reward_scaler.load_state_dict(state["reward_scaler"])
        self.buffer.load_state_dict(state["buffer"])
        self.steps_since_update = int(state["steps_since_update"])
        if self.bc is not None:
            self.bc.load_state_dict(state["bc"])
        self.sampler.load_state_dict(state)


class PPO(OnPolicyAgent, Agent):
    """PPO: b = 1, theta samples."""
    config_cls = PPOConfig


class PPOBuffer(OnPolicyAgent, Agent):
    """PPO trained on the last b batches as if they were on-policy."""
    config_cls = PPOBufferConfig


class PROPS(OnPolicyAgent, Agent):
    """Proximal Robust On-Policy Sampling: an adaptive behavior policy keeps old data on-policy."""
    config_cls = PROPSConfig


class ROS(OnPolicyAgent, Agent):
    """Robust On-policy Sampling: one plain gradient step on phi per env step."""
    config_cls = ROSConfig
