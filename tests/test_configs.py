"""Each algorithm's config holds only its own fields, each with a description."""

from __future__ import annotations

import dataclasses

import pytest

from hybridpg.config import CONFIGS, PPOBufferConfig, PPOConfig, PROPSConfig, ROSConfig
from hybridpg.errors import ConfigError

BEHAVIOR_FIELDS = {"behavior_steps", "props_lr", "props_epochs", "props_minibatches", "props_clip", "props_lambda",
                   "props_target_kl", "props_stale_reference", "ros_lr"}


def names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_ppo_has_no_behavior_policy_fields() -> None:
    for cls in (PPOConfig, PPOBufferConfig):
        assert not names(cls) & BEHAVIOR_FIELDS
    assert {"behavior_steps", "props_lr", "props_lambda"} <= names(PROPSConfig)
    assert "ros_lr" not in names(PROPSConfig) and {"behavior_steps", "ros_lr"} <= names(ROSConfig)
    assert not any(n.startswith("props_") for n in names(ROSConfig))


def test_a_setting_the_method_lacks_is_an_error_naming_its_owners() -> None:
    with pytest.raises(ConfigError, match=r"ppo has no config field 'props_lr' \(a field of props\)"):
        PPOConfig.from_dict({"props_lr": 1e-3})
    with pytest.raises(ConfigError, match=r"'behavior_steps' \(a field of props, ros\)"):
        PPOBufferConfig.from_dict({"behavior_steps": 64})
    assert PPOConfig.from_dict({"n_steps": 100}).n_steps == 100  # no PROPS constraint on m dividing n


def test_runs_saved_with_the_shared_layout_still_load() -> None:
    old = {"n_steps": 128, "behavior": "target", "behavior_steps": 256, "props_lr": 1e-3, "ros_lr": 1e-5}
    assert PPOConfig.from_saved(old).n_steps == 128
    props = PROPSConfig.from_saved({**old, "behavior": "props", "props_lr": 3e-3, "behavior_steps": 64})
    assert (props.props_lr, props.behavior_steps) == (3e-3, 64)
    with pytest.raises(ConfigError, match="'nonsense'"):  # only the retired fields are dropped
        PPOConfig.from_saved({**old, "nonsense": 1})


@pytest.mark.parametrize("algo", sorted(CONFIGS))
def test_every_field_has_a_one_line_description(algo: str) -> None:
    for f in dataclasses.fields(CONFIGS[algo]):
        text = f.metadata.get("help", "")
        assert text and "\n" not in text, f"{algo}.{f.name} has no description"


@pytest.mark.parametrize(("cls", "values", "message"), [
    (PPOConfig, {"vf_coef": "inf"}, "'vf_coef'=inf: must be a finite number"),
    (PPOConfig, {"ent_coef": float("inf")}, "'ent_coef'=inf: must be a finite number"),
    (PROPSConfig, {"props_lr": "inf"}, "'props_lr'=inf: must be a finite number"),
    (PROPSConfig, {"props_lambda": "inf"}, "'props_lambda'=inf: must be a finite number"),
    (ROSConfig, {"ros_lr": "inf"}, "'ros_lr'=inf: must be a finite number"),
    (PPOConfig, {"n_steps": "1e15"}, "'n_steps'=1000000000000000: must be at most"),
    (PPOConfig, {"hidden_sizes": "100000000000"}, "layer widths must be at most"),
    (PPOConfig, {"torch_threads": "10000000000"}, "'torch_threads'"),
    (CONFIGS["sac"], {"buffer_size": "1000000000000"}, "'buffer_size'"),
    (PPOConfig, {"n_steps": 10**7, "buffer_batches": 100}, "the buffer b\\*n must hold at most"),
])
def test_numbers_are_finite_and_of_a_size_that_runs(cls: type, values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cls.from_dict(values)


def test_a_buffer_larger_than_memory_is_refused_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import hybridpg.data.replay as replay
    from hybridpg import SAC

    monkeypatch.setattr(replay, "physical_memory", lambda: 2**30)  # a 1 GiB machine
    with pytest.raises(ConfigError, match=r"replay buffer of 50,000,000 needs .* GiB, more than .* 1.0 GiB"):
        SAC("Pendulum-v1", buffer_size=50_000_000)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64, 1.5, "3"])
def test_seeds_outside_numpys_range_are_one_error_line(seed: object) -> None:
    from hybridpg import PPO

    with pytest.raises(ConfigError, match=r"must be an integer in \[0, 2\*\*32\)"):
        PPO("CartPole-v1", seed=seed)  # type: ignore[arg-type]
