"""Full disks, read-only folders and damaged files are one error (or warning) line, never a traceback.

A full disk is a real small tmpfs where the tests may mount one (root), else skipped; the
config.yaml case uses RLIMIT_FSIZE like tests/test_disk_full.py and runs everywhere.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from hybridpg.cli import main
from hybridpg.experiments.compare import compare
from hybridpg.training.checkpoint import load_checkpoint

ARGS = ["--algo", "ppo", "--env", "CartPole-v1", "--seed", "1", "--n-steps", "128",
        "--n-epochs", "1", "--n-minibatches", "2", "--hidden-sizes", "8", "--eval-freq", "0",
        "--eval-episodes", "1", "--se-freq", "0", "--checkpoint-freq", "1", "--progress", "off"]


def cli(argv: list[str], cwd: Path, preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-W", "ignore", "-m", "hybridpg.cli", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn)


def one_error_line(stderr: str, *fragments: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr


@contextlib.contextmanager
def small_fs(path: Path, size: str = "4m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Write zeros into folder/filler until the filesystem is full."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def short_run(run_dir: Path, total: int = 256) -> None:
    assert main(["train", *ARGS, "--total-timesteps", str(total), "--run-dir", str(run_dir)]) == 0


def raise_total(run_dir: Path, total: int) -> None:
    """Give a finished run more steps so that --resume has work (and files) to write."""
    doc = yaml.safe_load((run_dir / "config.yaml").read_text())
    doc["total_timesteps"] = total
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def files(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


# -- 4: full disk and read-only folders ---------------------------------------------------------------------
def test_resume_of_a_read_only_run_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with small_fs(tmp_path / "fs") as fs:
        run_dir = fs / "run"
        short_run(run_dir)
        raise_total(run_dir, 1024)
        before = files(run_dir)
        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        capsys.readouterr()
        assert main(["train", "--resume", str(run_dir)]) == 2
        one_error_line(capsys.readouterr().err, f"cannot write to run folder {run_dir}", "Read-only file system")
        assert files(run_dir) == before


def test_run_dir_naming_an_existing_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["train", *ARGS, "--total-timesteps", "128", "--run-dir", str(afile)]) == 2
    one_error_line(capsys.readouterr().err, str(afile), "not a folder")
    assert main(["train", "--resume", str(afile)]) == 2
    one_error_line(capsys.readouterr().err, str(afile))
    assert afile.read_text() == "x"


FILL_AFTER_FINAL = r'''
import os
import sys
from pathlib import Path
from hybridpg.algorithms.base import Agent
from hybridpg.cli import main

save = Agent.save
def save_then_fill_the_disk(self, path):
    save(self, path)
    if Path(path).name == "final.pt":
        fd = os.open(Path(path).parent.parent / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            os.close(fd)
Agent.save = save_then_fill_the_disk
sys.exit(main(sys.argv[1:]))
'''


def test_full_disk_when_writing_summary_is_one_line_and_resume_finishes_later(tmp_path: Path) -> None:
    with small_fs(tmp_path / "fs") as fs:
        run_dir = fs / "run"
        script = tmp_path / "child.py"
        script.write_text(FILL_AFTER_FINAL)
        proc = subprocess.run([sys.executable, "-W", "ignore", str(script), "train", *ARGS, "--total-timesteps",
                               "256", "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr
        one_error_line(proc.stderr, f"cannot write {run_dir / 'summary.json'}", "No space left on device")
        assert not (run_dir / "summary.json").exists() and not list(run_dir.rglob("*.tmp"))
        assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] == 256
        (run_dir / "filler").unlink()  # space again: the run finishes where it stopped
        done = cli(["train", "--resume", str(run_dir)], tmp_path)
        assert done.returncode == 0, done.stderr
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_full_disk_for_event_files_is_one_line(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    short_run(run_dir)
    raise_total(run_dir, 4096)
    latest = (run_dir / "checkpoints" / "latest.pt").read_bytes()
    with small_fs(run_dir / "tb", size="64k") as tb:
        fill(tb)
        proc = cli(["train", "--resume", str(run_dir)], tmp_path)
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, f"cannot write {run_dir / 'tb'}", "No space left on device")
    assert (run_dir / "checkpoints" / "latest.pt").read_bytes() == latest


def limited(max_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG from write(), where a full disk gives ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


@pytest.mark.parametrize("mode", ["fresh", "resume"])
def test_full_disk_for_config_yaml_is_one_line(mode: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    if mode == "resume":
        short_run(run_dir)
        raise_total(run_dir, 1024)
    argv = ["train", "--resume", str(run_dir)] if mode == "resume" else ["train", *ARGS, "--total-timesteps", "256",
                                                                           "--run-dir", str(run_dir)]
    proc = cli(argv, tmp_path, preexec_fn=limited(200))  # config.yaml is ~900 bytes
    assert proc.returncode == 2, proc.stderr
    one_error_line(proc.stderr, f"cannot write {run_dir / 'config.yaml'}", "File too large")
    assert not list(run_dir.rglob("*.tmp"))


# -- 8: config.yaml on resume ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    short_run(run_dir, total=128)
    return run_dir


BAD_CONFIGS: dict[str, tuple[Callable[[str], str], str]] = {
    "a list": (lambda text: "- ppo\n- CartPole-v1\n", "it is a list"),
    "an empty file": (lambda text: "", "it is an empty file"),
    "a YAML syntax error": (lambda text: text.replace("algo: ppo", "algo: [ppo"), "not valid YAML"),
    "missing keys": (lambda text: "algo: ppo\nenv: CartPole-v1\n", "lacks seed, total_timesteps, config"),
    "gamma: [1,2]": (lambda text: text.replace("gamma: 0.99", "gamma: [1, 2]"), "'gamma'"),
    "total_timesteps: abc": (lambda text: text.replace("total_timesteps: 128", "total_timesteps: abc"),
                             "total_timesteps='abc'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_yaml_on_resume_is_one_line(
    case: str, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    edit, fragment = BAD_CONFIGS[case]
    text = (run_dir / "config.yaml").read_text()
    bad = edit(text)
    assert bad != text or case == "an empty file"
    (run_dir / "config.yaml").write_text(bad)
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir)]) == 2
    one_error_line(capsys.readouterr().err, str(run_dir / "config.yaml"), fragment)


# -- 9: compare survives one bad run folder; files follow the umask ------------------------------------------
def _run_folder(root: Path, seed: int) -> Path:
    run_dir = root / f"seed{seed}"
    run_dir.mkdir(parents=True)
    doc = {"algo": "ppo", "env": "Toy-v0", "seed": seed, "total_timesteps": 1000, "config": {}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(doc))
    rows = [{"step": s, "time": 0.0, "eval/return_mean": s / 100 + seed} for s in range(100, 1001, 100)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "summary.json").write_text(json.dumps({"status": "finished", "sps": 10.0}))
    return run_dir


def test_compare_skips_a_bad_run_folder_with_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "sweep"
    for seed in range(3):
        _run_folder(root, seed)
    non_numeric = _run_folder(root, 7)
    with open(non_numeric / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 1100, "eval/return_mean": "abc"}) + "\n")
    undecodable = _run_folder(root, 8)
    (undecodable / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    null_summary = _run_folder(root, 9)
    (null_summary / "summary.json").write_text("null")
    out = io.StringIO()
    compare(root, tmp_path / "report", reps=50, stream=out)
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 3, warnings
    for bad, line in zip((non_numeric, undecodable, null_summary), warnings, strict=True):
        assert line.startswith(f"warning: skipping run folder {bad}: "), line
    assert "ppo" in out.getvalue() and "3 " in out.getvalue()  # the three good seeds are compared


@pytest.mark.parametrize("umask", [0o002, 0o077])
def test_run_files_follow_the_umask(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        short_run(tmp_path / "run", total=128)
    finally:
        os.umask(old)
    run_dir = tmp_path / "run"
    for name in ("config.yaml", "summary.json", "metrics.jsonl", "checkpoints/latest.pt", "checkpoints/final.pt"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o666 & ~umask, name
