"""device='cuda' without CUDA is refused up front with one line, never run on the CPU quietly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hybridpg import PPO
from hybridpg.algorithms import base
from hybridpg.errors import ConfigError


def test_cuda_without_cuda_is_a_config_error_before_any_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    built: list[object] = []
    monkeypatch.setattr(base, "VecEnv", lambda *a, **k: built.append(a))
    with pytest.raises(ConfigError) as info:
        PPO("CartPole-v1", device="cuda")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("device='cuda' but torch.cuda.is_available() is False")
    assert built == []


def test_cpu_and_auto_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("cpu", "auto"):
        agent = PPO("CartPole-v1", device=device)
        assert agent.device == torch.device("cpu")
        agent.close()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cli_device_cuda_is_one_error_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hybridpg.cli", "train", "--device", "cuda",
                           "--run-dir", str(tmp_path / "run")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hybridpg train: device='cuda' but"), proc.stderr
    assert not (tmp_path / "run").exists()
