"""Settings: pydantic-settings, nested, env prefix UNDERSTUDY_ (nested with __, e.g. UNDERSTUDY_TEACHER__BACKEND)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.pipeline.render import default_prompts_dir
from service.ports import Precision

CHECKOUT_ADAPTERS = Path(__file__).resolve().parent.parent / "adapters"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "understudy"


class TeacherSettings(BaseModel):
    backend: Literal["transformers", "vllm_server", "vllm_offline"] = "transformers"
    model: str = "smollm2-135m-instruct"
    """A folder of weights, or the name of a packaged model ("smollm2-135m-instruct")."""
    vllm_url: str = "http://127.0.0.1:8000"
    vllm_urls: list[str] = Field(default_factory=list)
    """Several vLLM servers of the same model (replicas), in place of vllm_url: requests go to the one with the
    fewest in flight, and one that cannot be reached is set aside for 30 s (a JSON list in the environment)."""
    served_model_name: str | None = None
    """The name the vLLM server serves the model under (its --served-model-name), which requests must name; None:
    the model folder's path, vLLM's own default. The folder still gives the tokenizer."""
    few_shot: int = 4
    max_text_tokens: int = 256
    chunk_size: int = 32
    """Items scored per worker step; batch calibration uses the chunk plus recent items."""


class StudentSettings(BaseModel):
    min_train_labels: int = 100
    promotion_margin: float = 0.02


class PolicySettings(BaseModel):
    epsilon: float = 0.05
    delta: float = 0.1
    audit_share: float = 0.05
    min_reviews: int = 30
    seed_reviews: int = 40
    """Items sent to review first, spread over the embedding space, before anything can be auto-accepted."""


class CostSettings(BaseModel):
    """Prices for the cost report (GET /v1/tasks/{task}/cost; a request may override each)."""

    cpu_hour_usd: float = Field(default=0.04, ge=0)
    """Per vCPU-hour: what the student, the embedder, training and a teacher on the worker's CPU cost."""
    gpu_hour_usd: float = Field(default=3.5, ge=0)
    """Per hour of a GPU running the teacher in the worker's process (vllm_offline)."""
    server_hour_usd: float = Field(default=3.5, ge=0)
    """Per hour of the teacher server's machine (vllm_server), for the time the worker waited on it."""
    reviewer_hour_usd: float = Field(default=20.0, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="UNDERSTUDY_", env_nested_delimiter="__", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str = ""
    """Empty means SQLite at <data_dir>/understudy.db."""
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    prompts_dir: Path = Field(default_factory=default_prompts_dir)
    adapters_dir: Path | None = None
    """The student registry, <adapters_dir>/<task>/<version>/ with meta.json (see resolved_adapters_dir)."""

    max_text_chars: int = 1_000_000
    """Longer texts are rejected with 422; shorter ones are cut token-aware to the teacher's context (flagged)."""
    max_batch_items: int = 10_000
    label_job_items: int = Field(default=1000, ge=1)
    """Items per label job: a larger batch is split into chunk jobs that several workers share."""
    max_body_bytes: int = 32 * 1024 * 1024

    rate_limit_per_s: float = Field(default=200.0, ge=0)
    """Requests a second each API key may make to one API process, on average (0: no limit)."""
    rate_limit_burst: int = Field(default=400, ge=1)
    """Requests a key may make at once before the average rate applies."""

    job_lease_s: float = 120.0
    review_lease_s: float = 300.0
    worker_poll_s: float = 0.5
    embedded_worker: bool = True
    """`understudy serve` also runs one in-process worker (the embedded default)."""
    log_format: Literal["json", "text"] = "json"
    """Logs of `serve` and `worker`: one JSON object a line (with the request id), or plain text."""

    encoder_precision: Precision = "auto"
    """How the MiniLM encoders (student and embedder) run; see service.ports.Precision."""

    admin_key: str = ""
    """When set, an admin API key with this value is ensured at start-up."""

    teacher: TeacherSettings = TeacherSettings()
    student: StudentSettings = StudentSettings()
    policy: PolicySettings = PolicySettings()
    cost: CostSettings = CostSettings()

    @property
    def resolved_adapters_dir(self) -> Path:
        """Where students are saved: a relative ``adapters_dir`` lies under the data directory (not the working
        directory, so the API and workers started from different folders agree); unset, the checkout's
        top-level adapters/, or <data_dir>/adapters for an installed package."""
        if self.adapters_dir is None:
            return CHECKOUT_ADAPTERS if CHECKOUT_ADAPTERS.is_dir() else self.data_dir / "adapters"
        return self.adapters_dir if self.adapters_dir.is_absolute() else self.data_dir / self.adapters_dir

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'understudy.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
