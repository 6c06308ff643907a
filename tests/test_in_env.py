"""The environment picker and cache key of `scripts/in-env`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_ENV = REPO / "scripts" / "in-env"


def _in_env(*args: str, repo: Path = REPO, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SITN_")}
    full_env.update(env)
    return subprocess.run(
        ["bash", str(repo / "scripts" / "in-env"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("glibc", "python", "mode"),
    [
        ("2.36", "3.11", "sandbox"),  # Debian 12: TFX 1.21 wheels need glibc 2.39
        ("2.38", "3.12", "sandbox"),
        ("2.39", "3.10", "venv"),
        ("2.39", "3.13", "venv"),
        ("2.41", "3.11", "venv"),
        ("2.40", "3.9", "sandbox"),  # too old for the stack
        ("2.41", "3.14", "sandbox"),  # no TF 2.21 wheels yet
        ("2.100", "3.12", "venv"),  # versions compare numerically, not as text
    ],
)
def test_picker_chooses_mode_from_glibc_and_python(glibc: str, python: str, mode: str) -> None:
    result = _in_env("--which", SITN_ENV_GLIBC=glibc, SITN_ENV_PYTHON=python)
    assert result.returncode == 0, result.stderr
    chosen, reason = result.stdout.strip().split(" ", 1)
    assert chosen == mode
    assert glibc in reason or python in reason


def test_forced_mode_and_bad_mode() -> None:
    forced = _in_env(
        "--which", SITN_ENV_MODE="sandbox", SITN_ENV_GLIBC="2.41", SITN_ENV_PYTHON="3.12"
    )
    assert forced.stdout.split()[0] == "sandbox"
    bad = _in_env("--which", SITN_ENV_MODE="docker")
    assert bad.returncode != 0
    assert "SITN_ENV_MODE" in bad.stderr and "docker" in bad.stderr


def _copy_runner(tmp_path: Path, lock_text: str) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(IN_ENV, repo / "scripts" / "in-env")
    (repo / "requirements.lock").write_text(lock_text)
    return repo


def test_cache_key_follows_the_lock(tmp_path: Path) -> None:
    lock = (REPO / "requirements.lock").read_text()
    same = _copy_runner(tmp_path / "a", lock)
    changed = _copy_runner(tmp_path / "b", lock.replace("keras==", "keras==9", 1))
    key_here = _in_env("--cache-key").stdout.strip()
    key_same = _in_env("--cache-key", repo=same).stdout.strip()
    key_changed = _in_env("--cache-key", repo=changed).stdout.strip()
    assert len(key_here) == 16
    assert key_here == key_same  # another clone with the same lock reuses the cache
    assert key_changed != key_here


def test_sandbox_dir_is_outside_the_clone_and_keyed(tmp_path: Path) -> None:
    result = _in_env("--env-dir", SITN_ENV_MODE="sandbox", SITN_TF_CACHE=str(tmp_path))
    key = _in_env("--cache-key").stdout.strip()
    assert result.stdout.strip() == f"{tmp_path}/env-{key}"
    default = _in_env("--env-dir", SITN_ENV_MODE="sandbox", XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert default.stdout.strip() == f"{tmp_path}/xdg/sitn-tf/env-{key}"


def test_missing_lock_is_a_clear_error(tmp_path: Path) -> None:
    repo = _copy_runner(tmp_path, "")
    (repo / "requirements.lock").unlink()
    result = _in_env("--cache-key", repo=repo)
    assert result.returncode != 0
    assert "requirements.lock" in result.stderr


def test_exit_code_and_stdio_pass_through() -> None:
    # Inside the environment the runner execs the command directly.
    result = subprocess.run(
        ["bash", str(IN_ENV), "sh", "-c", "cat; exit 3"],
        input="piped through\n",
        env={**os.environ, "SITN_IN_ENV": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3
    assert result.stdout == "piped through\n"
