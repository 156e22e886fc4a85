"""A real Label Studio server for the round-trip test: installed from PyPI into a cached virtualenv of its own (it
pins Django and much else), started on the loopback with a data folder and a user made from environment
variables, and stopped with its process group."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from service.backends.venvs import cached_venv
from service.backends.vllm_env import free_port

LABEL_STUDIO = ("label-studio==1.23.2", "sentry-sdk<3")
"""sentry-sdk 3 (December 2026) refuses an option Label Studio 1.23 passes it, and Label Studio does not bound it."""
STARTUP_TIMEOUT_S = 600.0
EMAIL = "lead@example.com"


@dataclass(frozen=True)
class LabelStudio:
    base_url: str
    token: str

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(
            method,
            f"{self.base_url}{path}",
            headers={"Authorization": f"Token {self.token}"},
            timeout=120.0,
            **kwargs,
        )
        answer.raise_for_status()
        return answer.json() if answer.content else None


@contextlib.contextmanager
def running_label_studio(cache_dir: Path, data_dir: Path) -> Iterator[LabelStudio]:
    python = cached_venv(cache_dir / "venv-labelstudio", installs=[LABEL_STUDIO], check="import label_studio.server")
    port, token = free_port(), secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": EMAIL,
        "LABEL_STUDIO_PASSWORD": secrets.token_hex(12),
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
    }
    command = [str(python.parent / "label-studio"), "start", "--internal-host", "127.0.0.1", "-p", str(port)]
    log_path = data_dir / "label-studio.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, "--no-browser"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = LabelStudio(f"http://127.0.0.1:{port}", token)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Label Studio exited with {process.returncode}: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                server.call("GET", "/api/current-user/whoami")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Label Studio not up after {STARTUP_TIMEOUT_S:.0f} s: {log_path}")
            time.sleep(2.0)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
