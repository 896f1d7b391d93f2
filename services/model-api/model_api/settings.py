"""The one place that reads the environment. Every knob of the API is a field here (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model_api.vocabulary import CACHES, MODEL_RUNTIMES

HandlerStyle = Literal["sync", "async", "async-blocking"]
ModelRuntime = Literal[MODEL_RUNTIMES]  # type: ignore[valid-type]
CacheKind = Literal[CACHES]  # type: ignore[valid-type]
REDIS_SCHEMES = ("redis", "rediss", "unix")  # what redis-py's from_url reads

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = PACKAGE_ROOT / "artifacts"


class Settings(BaseSettings):
    """Workload knobs and service options, read from `LAB_*` variables (plus two standard ones)."""

    model_config = SettingsConfigDict(env_prefix="LAB_", frozen=True, extra="ignore", populate_by_name=True)

    handler_style: HandlerStyle = Field(
        "sync",
        description="sync: def handler in the threadpool; async: async def, I/O awaited; "
        "async-blocking: async def that blocks the event loop while it waits (the anti-pattern)",
    )
    downstream_latency_ms: float = Field(0.0, ge=0, le=60_000, description="mean simulated downstream wait")
    downstream_jitter_ms: float = Field(0.0, ge=0, le=60_000, description="uniform jitter around that mean")
    extra_cpu_ms: float = Field(0.0, ge=0, le=10_000, description="real CPU work added to each request")
    # Memory (docs/scenarios/memory-bound.md): what a request costs in memory, and what it fails to give back.
    request_memory_mb: float = Field(
        0.0,
        ge=0,
        le=4096,
        description="working memory each request allocates, fills and holds until it is answered (a feature matrix)",
    )
    leak_kb_per_request: float = Field(
        0.0, ge=0, le=65_536, description="memory each request leaves behind in its worker for good (a leak)"
    )
    max_requests: int = Field(
        0,
        ge=0,
        le=10_000_000,
        description="gunicorn recycles a worker after this many requests (0: never), the classic cure for a leak",
    )
    max_requests_jitter: int = Field(
        0, ge=0, le=10_000_000, description="up to this many more, drawn per worker, so workers never recycle at once"
    )
    threadpool_size: int = Field(40, ge=1, le=1024, description="threads for sync handlers, per worker")
    batching: bool = Field(False, description="group concurrent /classify requests into one model call")
    batch_max_size: int = Field(64, ge=1, le=1024, description="most requests in one batch")
    batch_max_wait_ms: float = Field(2.0, ge=0, le=1000, description="longest a request waits for a batch to fill")
    model_runtime: ModelRuntime = Field(
        MODEL_RUNTIMES[0],
        description="what runs the forests: sklearn, or onnx (ONNX Runtime, one thread per worker, on the forests "
        "training exports beside the scikit-learn ones)",
    )
    # The answer cache (docs/scenarios/caching.md): a repeated request skips the downstream wait and the model.
    cache: CacheKind = Field(
        CACHES[0],
        description="off; local: a bounded LRU in each worker; redis: one Redis that every worker and replica "
        "shares (LAB_REDIS_URL)",
    )
    cache_size: int = Field(10_000, ge=1, le=10_000_000, description="most answers a local cache keeps, per worker")
    cache_ttl_s: float = Field(
        300.0, gt=0, le=7 * 24 * 3600, description="how long a cached answer stays valid, in either cache"
    )
    # Natively the lab's Redis is on this machine; compose's caching scenario points it at its redis service.
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="the shared cache's Redis (LAB_CACHE=redis)")
    redis_timeout_ms: float = Field(
        50.0,
        gt=0,
        le=10_000,
        description="the longest any one Redis call may take before the request goes on without the cache",
    )
    metrics: bool = Field(True, description="record request metrics (off only to measure their cost)")
    # Cold start (docs/scenarios/cold-start.md): what a worker does between its start and its first request.
    model_fetch_ms: float = Field(
        0.0, ge=0, le=600_000, description="simulated download of the models before they load, as a large model takes"
    )
    warm_up: bool = Field(True, description="run warm-up predictions before the worker says it is ready")
    readiness_gate: bool = Field(
        True,
        description="a worker takes requests only once its models are loaded and warm; false: it takes them at once "
        "(answering 503 until the models are loaded) and /readyz says ready as soon as it answers",
    )
    approve_below: float = Field(0.25, gt=0, lt=1, description="default probability under which to approve")
    decline_from: float = Field(0.5, gt=0, le=1, description="default probability from which to decline")
    blas_threads: int = Field(1, ge=1, le=64, description="BLAS/OpenMP threads per worker")
    model_dir: Path = Field(DEFAULT_MODEL_DIR, description="where training writes and the API reads artifacts")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024, description="larger bodies get 413")
    # Standard names that other tools read too, so they carry no LAB_ prefix.
    multiproc_dir: Path | None = Field(
        None,
        validation_alias=AliasChoices("PROMETHEUS_MULTIPROC_DIR"),
        description="prometheus-client multiprocess directory; required under gunicorn",
    )
    web_concurrency: int = Field(
        1, ge=1, le=64, validation_alias=AliasChoices("WEB_CONCURRENCY"), description="gunicorn workers"
    )
    slo_ms: float = Field(
        1000.0,
        gt=0,
        le=600_000,
        validation_alias=AliasChoices("LOCUST_SLO_MS"),
        description="the latency SLO (P99, ms) the diagnosis judges by; Locust's own setting, so there is one number",
    )

    @field_validator("multiproc_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty variable must not become Path("."), the current folder, whose files gunicorn would delete.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
            schemes = ", ".join(REDIS_SCHEMES)
            raise ValueError(f"must be a Redis URL such as redis://host:6379/0 (scheme one of {schemes})")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Settings:
        if self.downstream_jitter_ms > self.downstream_latency_ms:
            raise ValueError(
                "LAB_DOWNSTREAM_JITTER_MS must not exceed LAB_DOWNSTREAM_LATENCY_MS "
                "(the wait is drawn uniformly from mean - jitter to mean + jitter)"
            )
        if self.approve_below >= self.decline_from:
            raise ValueError("LAB_APPROVE_BELOW must be lower than LAB_DECLINE_FROM")
        return self

    @property
    def multiprocess(self) -> bool:
        return self.multiproc_dir is not None


class SettingsError(SystemExit):
    """Raised with a message naming each bad variable, so a misconfigured start fails readably."""


def env_name(field: str) -> str:
    """The environment variable that sets a settings field (errors on aliased fields already name it)."""
    if field not in Settings.model_fields:
        return field
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    return f"LAB_{field.upper()}"


def load_settings() -> Settings:
    """Read the settings from the environment, or exit with one line per bad variable."""
    try:
        return Settings()
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            if problem["loc"]:
                lines.append(f"  {env_name(str(problem['loc'][0]))}: {problem['msg']} (got {problem['input']!r})")
            else:
                lines.append(f"  {problem['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid model-api settings:\n" + "\n".join(lines)) from None
