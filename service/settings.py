"""Service configuration from ``LATBENCH_*`` environment variables or a ``.env`` file.

One ``Settings`` object is built per process through the cached ``get_settings()``; tests build
their own and pass it to ``create_app``. Unsafe combinations are refused when settings are built,
not discovered in production: binding to a non-loopback address needs an API token.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from devices.jobs.lock import DEFAULT_LOCK
from exporters.errors import SpecError

if TYPE_CHECKING:
    from devices.settings import MeasureSettings
    from exporters.budget import WorkBudget


@lru_cache(maxsize=256)  # asked per request of the Host header (an address parse is ~6 us)
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LATBENCH_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_token: str | None = Field(None, min_length=16, description="required off loopback")
    runner_token: str | None = Field(
        None, min_length=16, description="secret a runner shows to register; None on loopback"
    )
    data_dir: Path = Field(Path(".latbench"), description="database and artifact store root")
    database_url: str | None = Field(None, description="default: SQLite file in data_dir")
    dispatcher: Literal["local", "celery"] = "local"
    broker_url: str = "redis://127.0.0.1:6379/0"
    queue_namespace: str = Field(
        "",
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]*$",
        description="prefix of the Celery queue names: deployments sharing one Redis stay apart",
    )
    local_runner: bool = Field(True, description="embedded default: measure on this host's CPU")
    export_workers: int = Field(
        1, ge=0, le=64, description="celery: export worker processes the worker process starts"
    )
    reference_csv: Path | None = Field(
        None, description="published top-1/latency CSV; default: the one shipped in the package"
    )
    host_lock: Path = DEFAULT_LOCK
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="loopback mode: Host names answered besides localhost, 127.0.0.1 and [::1] "
        "(anything else is refused: DNS rebinding)",
    )

    max_body_bytes: int = Field(64 * 1024, ge=1024)
    max_artifact_bytes: int = Field(
        256 * 1024 * 1024, ge=1024, description="bound of an uploaded artifact (POST /artifacts)"
    )
    max_queued_per_user: int = Field(50, ge=1)
    max_store_bytes: int = Field(
        100 * 2**30,
        ge=2**20,
        description="artifact store bound: past it the least recently used artifacts no "
        "unfinished job needs are freed (at start, after uploads, latbench gc)",
    )
    gc_grace_s: float = Field(
        600.0, ge=0, description="an artifact read this recently is never freed"
    )
    max_upload_bytes_per_user: int = Field(
        4 * 2**30, ge=1024, description="bytes of uploads one user may own (POST /artifacts)"
    )
    job_timeout_s: float = Field(
        1800.0, gt=0, description="an export from its start, a measurement from its claim"
    )
    max_queue_age_s: float = Field(
        86400.0, gt=0, description="a job no runner has taken this long after submission fails"
    )
    redispatch_s: float = Field(
        600.0, gt=0, description="a job queued this long since last sent is sent again"
    )
    max_attempts: int = Field(
        3, ge=1, le=100, description="interrupted runs (worker crash, silent runner, restart)"
    )
    export_memory_mb: int = Field(
        8192, ge=256, le=1 << 24, description="address-space limit of each export worker process"
    )
    measure_memory_mb: int = Field(
        8192, ge=256, le=1 << 24, description="address-space limit of each measuring process"
    )
    max_runners_per_credential: int = Field(
        64,
        ge=1,
        description="live (unrevoked) runner registrations one credential, or the shared "
        "runner token, may hold; a runner registering again under its name takes its own row",
    )
    runner_retention_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="a runner row silent this long that no job or result names is pruned "
        "(latbench gc, the worker's start)",
    )
    heartbeat_interval_s: float = Field(5.0, gt=0)
    heartbeat_timeout_s: float = Field(30.0, gt=0)
    reaper_interval_s: float = Field(2.0, gt=0)

    max_params: int = Field(
        1_000_000_000, ge=1, description="work budget: parameters of one spec's model"
    )
    max_macs: int = Field(
        1_000_000_000_000, ge=1, description="work budget: MACs of one forward pass"
    )
    max_activation_bytes: int = Field(
        16 * 2**30, ge=1, description="work budget: bytes of every tensor of one forward pass"
    )
    workers: int = Field(
        0,
        ge=0,
        le=64,
        description="API processes answering on the port; 0: one per physical core (at most 4)",
    )
    db_pool_size: int = Field(
        2,
        ge=1,
        le=1000,
        description="requests holding database sessions at once, per API process (more threads "
        "than cores contend for the interpreter lock: fewer requests per second)",
    )
    db_pool_timeout_s: float = Field(
        5.0, gt=0, le=300, description="wait for a free connection; past it a 503 + Retry-After"
    )
    db_busy_timeout_s: float = Field(
        5.0, gt=0, le=300, description="SQLite: wait for the write lock; past it a 503"
    )

    @model_validator(mode="after")
    def _refuse_open_bind_without_token(self) -> Settings:
        if not is_loopback(self.host) and not self.api_token:
            raise ValueError(
                f"host {self.host!r} is not loopback: set LATBENCH_API_TOKEN (16+ chars) "
                "so that requests are authenticated"
            )
        if not is_loopback(self.host) and not self.runner_token:
            raise ValueError(
                f"host {self.host!r} is not loopback: set LATBENCH_RUNNER_TOKEN (16+ chars) "
                "so that only your runners can register"
            )
        if self.heartbeat_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("heartbeat_timeout_s must exceed heartbeat_interval_s")
        return self

    def refuse_unfinishable(self, measure: MeasureSettings) -> None:
        """SpecError naming the field when ``measure`` would sample past the job timeout (a
        measurement the reaper fails every time, after holding a runner that long)."""
        field = "sustained_seconds" if measure.sustained_seconds else "max_seconds"
        sampling = measure.sustained_seconds or measure.max_seconds
        longest = measure.warmup_max_seconds + sampling
        if longest >= self.job_timeout_s:
            raise SpecError(
                f"warm-up ({measure.warmup_max_seconds:g} s) and {field} ({sampling:g} s) run "
                f"past the job timeout ({self.job_timeout_s:g} s, LATBENCH_JOB_TIMEOUT_S): the "
                "job could never finish",
                field=f"settings.{field}",
            )

    @property
    def work_budget(self) -> WorkBudget:
        from exporters.budget import WorkBudget  # torch: only where a spec is checked

        return WorkBudget(self.max_params, self.max_macs, self.max_activation_bytes)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'latbench.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
