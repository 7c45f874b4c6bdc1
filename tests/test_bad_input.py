"""Bad input: one clear error (the right HybridPGError subclass, naming the culprit), exit code 2
from the CLI with a single ``error:`` line, and no run folder or partial files left behind."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import struct
import typing
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridpg.algorithms import ALGORITHMS, PPO
from hybridpg.algorithms.base import Agent
from hybridpg.cli import main
from hybridpg.config import CONFIGS, PPOConfig, PROPSConfig
from hybridpg.data.datasets import collect_episodes, load_dataset, write_dataset
from hybridpg.errors import CheckpointError, ConfigError, DatasetError, EnvError, NonFiniteError
from hybridpg.training.checkpoint import FORMAT_VERSION, MAGIC, load_checkpoint, save_checkpoint

# -- the config space --------------------------------------------------------------------------------
FREE_FORM = {"offline_root", "offline_dataset"}  # paths/ids, checked where they are opened
NEEDS = {"hnpg": {"offline_dataset": "unused"}}  # required fields, so the field under test is the culprit
BAD_BY_NAME: dict[str, list[Any]] = {
    "gamma": [0.0, 1.5], "gae_lambda": [-0.1, 1.1], "props_clip": [0.0, 1.0], "se_freq": [-2],
    "device": ["tpu"], "behavior": ["random"], "hidden_sizes": [(), (64, 0), 64],
    "n_steps": [0],
    "env_kwargs": ["g", "=1", [1, 2], {"": 1}],
}
CONTEXT = {"horizon": {"finite_horizon": True}}  # fields that only matter together with another
BAD_BY_TYPE: dict[Any, list[Any]] = {int: [-1], float: [float("nan"), -1.0], bool: ["maybe"], str: ["bogus"]}


def bad_values(config_cls: type, field: dataclasses.Field[Any]) -> list[Any]:
    if field.name in BAD_BY_NAME:
        return BAD_BY_NAME[field.name]
    hint = typing.get_type_hints(config_cls)[field.name]
    inner = [a for a in typing.get_args(hint) if a is not type(None)]
    return BAD_BY_TYPE[inner[0] if inner else hint]


CASES = [
    (algo, f.name, value)
    for algo, cls in CONFIGS.items()
    for f in dataclasses.fields(cls)
    if f.name not in FREE_FORM
    for value in bad_values(cls, f)
    # float fields where negative numbers are meaningful take only NaN
    if not (value == -1.0 and isinstance(value, float) and f.name in {"target_entropy"})
]


@pytest.mark.parametrize(("algo", "name", "value"), CASES, ids=[f"{a}-{n}-{v!r}" for a, n, v in CASES])
def test_every_config_field_rejects_out_of_range(algo: str, name: str, value: Any) -> None:
    values = {**NEEDS.get(algo, {}), **CONTEXT.get(name, {}), name: value}
    with pytest.raises(ConfigError, match=f"'{name}'"):
        CONFIGS[algo].from_dict(values)


def outside(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(max_value=low, exclude_max=True) | st.floats(min_value=high, exclude_min=True) | st.just(
        math.nan
    )


NUMERIC: dict[str, st.SearchStrategy[Any]] = {
    "num_envs": st.integers(max_value=0),
    "eval_episodes": st.integers(max_value=0),
    "checkpoint_freq": st.integers(max_value=-1),
    "n_epochs": st.integers(max_value=0),
    "gamma": st.floats(max_value=0.0) | st.floats(min_value=1.0, exclude_min=True) | st.just(math.nan),
    "learning_rate": st.floats(max_value=0.0) | st.just(math.nan) | st.just(math.inf),
    "gae_lambda": outside(0.0, 1.0),
    "props_clip": st.floats(max_value=0.0) | st.floats(min_value=1.0),
    "clip_coef": st.floats(max_value=0.0),
}


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(NUMERIC)), data=st.data())
def test_numeric_fields_out_of_range_name_the_field(name: str, data: st.DataObject) -> None:
    value = data.draw(NUMERIC[name])
    for cls in (PPOConfig, PROPSConfig):  # a field the config lacks is refused by name too
        with pytest.raises(ConfigError, match=f"'{name}'"):
            cls.from_dict({name: value})


# -- the CLI: one line, exit 2, nothing written --------------------------------------------------------
def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


CLI_CASES = {
    "unknown env": (["--env", "NoSuchEnv-v9"], "NoSuchEnv-v9"),
    "unknown algo": (["--algo", "nope"], "nope"),
    "config out of range": (["--gamma", "2"], "gamma"),
    "config not a number": (["--n-steps", "lots"], "n_steps"),
    "unknown option": (["--no-such-flag", "1"], "--no-such-flag"),
    "zero budget": (["--total-timesteps", "0"], "total-timesteps"),
}
if "sac" in ALGORITHMS:
    CLI_CASES["box-only algo on a discrete env"] = (["--algo", "sac", "--env", "CartPole-v1"], "Box")


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input_one_line_exit_2_no_files(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    extra, culprit = CLI_CASES[case]
    code, err = run_cli(["train", "--run-dir", "run", "--total-timesteps", "256", *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], err
    assert list(tmp_path.iterdir()) == []  # no run folder, no runs/, nothing


def test_cli_run_dir_under_a_regular_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("x")
    code, err = run_cli(["train", "--run-dir", "afile/run", "--total-timesteps", "64", "--n-steps", "64",
                         "--n-minibatches", "2"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: hybridpg train: cannot write to run folder afile/run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_cli_read_only_run_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: chmod does not block writes (the regular-file case covers this path)")
        code, err = run_cli(["train", "--run-dir", str(parent / "run"), "--total-timesteps", "64"], capsys)
        assert code == 2 and err.count("\n") == 1
        assert err.startswith("error: hybridpg train: cannot write to run folder")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o700)


# -- checkpoints ------------------------------------------------------------------------------------------
TINY: dict[str, Any] = {"n_steps": 64, "n_minibatches": 2, "n_epochs": 1, "hidden_sizes": (8,),
        "eval_freq": 0, "eval_episodes": 1}
PROPS_TINY = {**TINY, "behavior_steps": 64}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ckpt")
    out = {}
    for algo in ("ppo", "props"):
        agent = ALGORITHMS[algo]("CartPole-v1", seed=0, **(PROPS_TINY if algo == "props" else TINY))
        agent.learn(128, progress=False)
        out[algo] = root / f"{algo}.pt"
        agent.save(out[algo])
    return out


def rewrite(src: Path, dst: Path, version: int | None = None, payload: bytes | None = None) -> Path:
    data = src.read_bytes()
    header = len(MAGIC) + 4 + 32
    body = data[header:] if payload is None else payload
    ver = FORMAT_VERSION if version is None else version
    dst.write_bytes(MAGIC + struct.pack("<I", ver) + hashlib.sha256(body).digest() + body)
    return dst


def test_checkpoint_from_another_algorithm(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match="'props' checkpoint, not 'ppo'"):
        PPO.load(checkpoints["props"])


def test_checkpoint_into_an_env_with_other_spaces(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(CheckpointError, match="observation space"):
        Agent.load(checkpoints["ppo"], env="Acrobot-v1")  # Box(6,) observations vs CartPole's Box(4,)


def test_checkpoint_with_an_older_network_layout_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SAC's output layers changed layout ((n, h, out) -> (n, out, h)); such a checkpoint is refused
    in one line, by the API and by the CLI, and the run folder is left as it was."""
    run = tmp_path / "run"
    args = "train --algo sac --env Pendulum-v1 --total-timesteps 60 --learning-starts 40 --batch-size 16"
    args += f" --hidden-sizes 16,16 --log-freq 20 --eval-freq 60 --checkpoint-freq 20 --run-dir {run}"
    assert main(args.split()) == 0
    final = run / "checkpoints" / "final.pt"
    state = load_checkpoint(final)
    w_out = state["algo_state"]["actor"]["net.w_out"]
    state["algo_state"]["actor"]["net.w_out"] = w_out.transpose(1, 2).contiguous()  # the old layout
    save_checkpoint(final, state)
    before = sorted((p.name, p.stat().st_size) for p in run.rglob("*"))
    with pytest.raises(CheckpointError, match="size mismatch for net.w_out") as info:
        Agent.load(final)
    assert "\n" not in str(info.value)
    capsys.readouterr()
    assert main(["eval", str(run), "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    # eval loads only the policy (load_policy), which names the same mismatch
    assert err.startswith("error: hybridpg eval: ") and "usable sac policy" in err and "net.w_out" in err
    assert sorted((p.name, p.stat().st_size) for p in run.rglob("*")) == before


def test_checkpoint_from_a_future_format(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    future = rewrite(checkpoints["ppo"], tmp_path / "future.pt", version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match="newer than this hybridpg"):
        load_checkpoint(future)


@pytest.mark.parametrize("cut", [0, 20, 500, -1])
def test_truncated_checkpoint(checkpoints: dict[str, Path], tmp_path: Path, cut: int) -> None:
    data = checkpoints["ppo"].read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="truncated"):
        Agent.load(path)


def test_corrupt_checkpoint(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(checkpoints["ppo"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    path = tmp_path / "flip.pt"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        Agent.load(path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    proof, marker = tmp_path / "unsafe-load-ran", tmp_path / "pwned"

    def payload_for(target: Path) -> bytes:
        import io

        buffer = io.BytesIO()
        torch.save({"algo": "ppo", "x": _Exploit(target)}, buffer)
        return buffer.getvalue()

    # the payload is live: an unsafe load runs it ...
    torch.load(__import__("io").BytesIO(payload_for(proof)), weights_only=False)
    assert proof.exists()
    # ... and a checkpoint with a valid header and checksum around it is refused without running it
    src = tmp_path / "src.pt"
    src.write_bytes(MAGIC + struct.pack("<I", FORMAT_VERSION) + bytes(32))
    evil = rewrite(src, tmp_path / "evil.pt", payload=payload_for(marker))
    with pytest.raises(CheckpointError, match="refused by the safe loader"):
        Agent.load(evil)
    assert not marker.exists()


# -- datasets -------------------------------------------------------------------------------------------
def test_corrupt_dataset_file(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1")
    episodes = collect_episodes(env, lambda obs: 0, n_episodes=2, seed=0)
    write_dataset("test/cart-v0", episodes, "CartPole-v1", env.observation_space, env.action_space, root=tmp_path)
    hdf5 = next(tmp_path.rglob("main_data.hdf5"))
    hdf5.write_bytes(hdf5.read_bytes()[:100])
    with pytest.raises(DatasetError):
        load_dataset("test/cart-v0", root=tmp_path)


# -- an env that returns NaN -------------------------------------------------------------------------
class NaNAtStep(gym.Env[np.ndarray, np.int64]):
    """CartPole-like shapes; the reward becomes NaN at global env step ``k``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float64)
    action_space = gym.spaces.Discrete(2)
    k = 300
    calls = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-0.1, 0.1, 4), {}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        NaNAtStep.calls += 1
        self.t += 1
        reward = math.nan if NaNAtStep.calls == self.k else 1.0
        return self.np_random.uniform(-0.1, 0.1, 4), reward, False, self.t >= 20, {}


gym.register("hybridpg-test/NaNAtStep-v0", entry_point=lambda **kw: NaNAtStep())


def test_nan_from_env_stops_with_one_line_and_intact_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    NaNAtStep.calls = 0
    run_dir = tmp_path / "run"
    tiny = [f"--{k.replace('_', '-')}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in TINY.items()]
    argv = ["train", "--env", "hybridpg-test/NaNAtStep-v0", "--run-dir", str(run_dir), "--total-timesteps", "1024",
            "--checkpoint-freq", "1", "--progress", "off", *tiny]
    code, err = run_cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "non-finite reward at env step 299" in lines[0]
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")  # the last good one, intact
    assert state["global_step"] == 256  # the checkpoint at the loop boundary before the bad step
    agent = Agent.load(run_dir / "checkpoints" / "latest.pt")  # a test env, outside the covered families
    assert agent.env_state_exact is False  # a resume would warn; a load does not
    assert agent.global_step == 256 and not (run_dir / "summary.json").exists()


def test_nan_from_env_in_the_library(tmp_path: Path) -> None:
    NaNAtStep.calls = 0
    agent = PPO("hybridpg-test/NaNAtStep-v0", **TINY)
    with pytest.raises(NonFiniteError, match="env step 299"):
        agent.learn(1024, progress=False)


def test_unknown_env_in_the_library() -> None:
    with pytest.raises(EnvError, match="NoSuchEnv"):
        PPO("NoSuchEnv-v9")


@pytest.mark.parametrize("dataset_id", ["../escape-v0", "ns/../../escape-v0", "..-v0"])
def test_dataset_ids_cannot_escape_the_root(dataset_id: str, tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(DatasetError):
        load_dataset(dataset_id, root=tmp_path / "root")


class _ImageEnv(gym.Env):  # type: ignore[type-arg]
    observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 1.0, False, False, {}


@pytest.mark.parametrize("algo", ["ppo", "props", "sac"])
def test_image_observations_are_refused_up_front_naming_the_supported_spaces(algo: str) -> None:
    extra = {"sac": {}, "ppo": {"n_steps": 64}, "props": {"n_steps": 64, "behavior_steps": 64}}[algo]
    with pytest.raises(EnvError, match=r"unsupported observation space .*\(16, 16, 3\).*1-D Box or a Discrete") as info:
        ALGORITHMS[algo](_ImageEnv, **extra)
    assert "\n" not in str(info.value)


def test_diverged_weights_stop_the_run_with_one_line_and_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    import hybridpg.algorithms.onpolicy as onpolicy
    from hybridpg.training.logger import read_metrics

    real_update = onpolicy.OnPolicyAgent._ppo_update

    def diverging(self: Any, data: Any) -> dict[str, float]:
        out = real_update(self, data)
        if self.updates == 2:  # the third update blows the weights up, as an unstable step size would
            with torch.no_grad():
                next(self.policy.parameters()).fill_(float("nan"))
            out["losses/policy_loss"] = float("nan")
        return out

    monkeypatch.setattr(onpolicy.OnPolicyAgent, "_ppo_update", diverging)
    run_dir = tmp_path / "run"
    code, err = run_cli(["train", "--env", "CartPole-v1", "--run-dir", str(run_dir), "--total-timesteps", "512",
                         "--n-steps", "64", "--n-minibatches", "2", "--checkpoint-freq", "1", "--eval-freq", "0",
                         "--progress", "off"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "training diverged at env step 192 (update 3): non-finite weights in policy" in err
    assert "last good checkpoint is kept" in err
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    assert state["global_step"] == 128  # written after update 2, before the weights broke
    policy = state["algo_state"]["policy"] if "algo_state" in state else state["policy"]
    assert all(bool(torch.isfinite(t).all()) for t in policy.values())
    # the non-finite loss is in the metrics, not dropped
    losses = [r["losses/policy_loss"] for r in read_metrics(run_dir / "metrics.jsonl") if "losses/policy_loss" in r]
    assert math.isnan(losses[-1])


def test_a_budget_between_chunks_says_where_the_run_stops() -> None:
    from hybridpg import PROPS

    agent = PROPS("CartPole-v1", n_steps=512, behavior_steps=256, eval_freq=0, hidden_sizes=(8,))
    with pytest.warns(UserWarning, match="whole chunks of 256 env steps .* stops at step 1024, not 1000"):
        agent.learn(1000, progress=False)
    assert agent.global_step == 1024
    agent.close()


# -- env kwargs and envs that misbehave: one EnvError line naming the env, never a traceback -----------
ENV_KWARGS_CASES = {
    "text for a weight": ("ctrl_cost_weight=abc", "ctrl_cost_weight='abc' is text, the env expects a number"),
    "zero frame_skip": ("frame_skip=0", "frame_skip=0 must be a positive integer"),
    "negative frame_skip": ("frame_skip=-3", "frame_skip=-3 must be a positive integer"),
    "negative max_episode_steps": ("max_episode_steps=-5", "max_episode_steps=-5 must be a positive integer"),
    "zero max_episode_steps": ("max_episode_steps=0", "max_episode_steps=0 must be a positive integer"),
    "unknown kwarg": ("no_such_kw=1", "unexpected keyword argument 'no_such_kw'"),
    "a number for a range": ("healthy_z_range=0.5", "healthy_z_range=0.5 is a number, the env expects a sequence"),
}


@pytest.mark.parametrize("async_envs", [False, True])
@pytest.mark.parametrize("case", sorted(ENV_KWARGS_CASES))
def test_cli_bad_env_kwargs_are_one_line_naming_env_and_kwargs(
    case: str, async_envs: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("mujoco")
    monkeypatch.chdir(tmp_path)
    kwargs, culprit = ENV_KWARGS_CASES[case]
    code, err = run_cli(["train", "--env", "Hopper-v5", "--env-kwargs", kwargs, "--async-envs", str(async_envs),
                         "--num-envs", "2", "--run-dir", "run", "--total-timesteps", "256"], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "'Hopper-v5' with env_kwargs {" in lines[0] and culprit in lines[0], err
    assert list(tmp_path.iterdir()) == []  # refused before the run folder


class _Faulty(gym.Env):  # type: ignore[type-arg]
    """An env with one fault, from its third step where the fault is in ``step``."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, fault: str = "none") -> None:
        self.fault = fault
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        if self.fault == "reset raises":
            raise RuntimeError("reset exploded\nwith a second line")
        return np.zeros(3 if self.fault == "reset shape" else 4), {}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        self.t += 1
        obs, reward = np.zeros(4), 1.0
        if self.t >= 3:
            if self.fault == "step raises":
                raise RuntimeError("step exploded")
            obs = np.zeros(5) if self.fault == "step shape" else obs
            reward = {"step reward array": np.array([1.0, 2.0]), "step reward text": "high"}.get(self.fault, reward)
        return obs, reward, False, self.t >= 20, {}


gym.register("hybridpg-test/Faulty-v0", entry_point=_Faulty)
FAULTS = {  # fault: (sync message, async message): the workers report some faults in their own words
    "reset raises": ("failed in reset: RuntimeError: reset exploded",) * 2,
    "reset shape": ("reset returned an observation of shape (3,), its observation_space has shape (4,)",
                    "failed in reset: ValueError: could not broadcast input array from shape (3,) into shape (4,)"),
    "step raises": ("failed in step at env step 4: RuntimeError: step exploded",) * 2,
    "step shape": ("step returned an observation of shape (5,), its observation_space has shape (4,)",
                   "failed in step at env step 4: ValueError: could not broadcast input array from shape (5,)"),
    "step reward array": ("step returned the reward array([1., 2.]), not a scalar number",
                          "step returned rewards of shape (2,), not scalars"),
    "step reward text": ("step returned the reward 'high', not a scalar number",
                         "failed in step at env step 4: ValueError: could not convert string to float: 'high'"),
}


@pytest.mark.parametrize("async_envs", [False, True])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_env_that_raises_or_returns_misshapen_values_is_one_env_error(fault: str, async_envs: bool) -> None:
    from hybridpg.envs import VecEnv

    vec = None
    with pytest.raises(EnvError) as info:
        vec = VecEnv("hybridpg-test/Faulty-v0", 2, async_envs, seed=0, env_kwargs={"fault": fault})
        for _ in range(5):
            vec.step(np.zeros(2, dtype=np.int64))
    if vec is not None:
        vec.close()  # after a worker died of the fault too
    message = str(info.value)
    assert "\n" not in message and f"'hybridpg-test/Faulty-v0' with env_kwargs {{'fault': '{fault}'}}" in message
    assert FAULTS[fault][async_envs] in message, message


@pytest.mark.parametrize("async_envs", [False, True])
def test_cli_env_that_fails_mid_run_is_one_line(
    async_envs: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(["train", "--env", "hybridpg-test/Faulty-v0", "--env-kwargs", "fault=step raises",
                         "--async-envs", str(async_envs), "--run-dir", str(tmp_path / "run"),
                         "--total-timesteps", "256", "--n-steps", "64", "--eval-freq", "0", "--progress", "off"],
                        capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "RuntimeError: step exploded" in lines[0], err


@pytest.mark.parametrize("fault", ["reset raises", "step raises"])
def test_an_env_that_fails_during_evaluation_is_one_env_error(fault: str) -> None:
    from hybridpg import PPO, evaluate

    agent = PPO("CartPole-v1", seed=0, n_steps=64, eval_freq=0)
    try:
        with pytest.raises(EnvError) as info:
            evaluate(agent, _Faulty(fault), n_episodes=2)
    finally:
        agent.close()
    message = str(info.value)
    assert "\n" not in message and "failed in evaluation" in message and "exploded" in message, message
