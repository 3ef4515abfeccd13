"""The one settings object every forgetd process shares (API, worker, serving, CLI).

Values come from ``FORGETD_*`` environment variables (or a ``.env`` file). Nothing here is read at
import time: each process calls :func:`get_settings` in its start-up hook, so importing the package
(for example from a Celery worker) builds nothing heavy and reads nothing from disk.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from forgetd.payload import MAX_ITEMS, MAX_TEXT_CHARS

if TYPE_CHECKING:
    from adapters_store import AdapterStore

PLACEHOLDER_TOKEN = "change-me"
# An S3 bucket name (3-63 characters of lower case, digits, dots, hyphens) and an optional key prefix.
_S3_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?")

Mode = Literal["embedded", "production"]
DeviceChoice = Literal["auto", "cpu", "cuda"]


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "forgetd"


class Settings(BaseSettings):
    """Typed configuration; every field has a safe default for the embedded (all-in-one) mode."""

    model_config = SettingsConfigDict(env_prefix="FORGETD_", env_file=".env", extra="ignore")

    mode: Mode = Field("embedded", description="embedded: one machine, secrets generated into data_dir; "
                       "production: every secret must be given explicitly.")
    data_dir: Path = Field(default_factory=_default_data_dir,
                           description="Where forgetd keeps generated keys, the model cache and Redis data.")
    store_dir: Path | None = Field(None, description="Root of the adapter store; default <data_dir>/adapters.")
    store_url: str = Field("", description="s3://bucket[/prefix]: keep the adapter store in an S3-compatible "
                           "bucket (credentials from the standard AWS_* variables or an instance role, never "
                           "from forgetd's settings); empty: the local directory store_dir.")
    store_endpoint_url: str = Field("", description="Endpoint of an S3-compatible server other than AWS S3 "
                                    "(it must honour conditional writes: If-None-Match and If-Match); "
                                    "empty: AWS S3.")
    model_cache_dir: Path | None = Field(None, description="Converted base models; default <data_dir>/models.")

    # Redis and Celery
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Ledger, locks and notifications.")
    broker_url: str | None = Field(None, description="Celery broker; default: redis_url.")
    key_prefix: str = Field("forgetd", pattern=r"^[a-z][a-z0-9_-]{0,31}$",
                            description="Prefix of every Redis key and pub/sub channel forgetd uses.")
    queue_name: str = Field("forgetd", description="Celery queue for admission and batching tasks.")
    gpu_queue_name: str = Field("forgetd-gpu", description="Celery queue for unlearning jobs (GPU workers).")
    visibility_timeout_s: int = Field(6 * 3600, ge=60,
                                      description="Broker redelivery timeout; longer than the longest job.")

    # Security
    api_token: SecretStr = Field(SecretStr(PLACEHOLDER_TOKEN), description="Bearer token for the intake API.")
    admin_token: SecretStr = Field(SecretStr(PLACEHOLDER_TOKEN),
                                   description="Bearer token for admin and adapter-management endpoints.")
    master_key: SecretStr | None = Field(None, description="Base64 32-byte key wrapping per-request data "
                                         "keys; generated into data_dir in embedded mode.")
    hmac_key: SecretStr | None = Field(None, description="Base64 key for duplicate fingerprints; generated "
                                       "into data_dir in embedded mode.")
    previous_master_keys: SecretStr | None = Field(
        None, description="Comma-separated base64 master keys that still open data keys wrapped before a "
        "rotation; drop them once `forgetd keys rotate-master` reports nothing left under them.")

    # Intake limits
    max_body_bytes: int = Field(256 * 1024, ge=1024, description="Largest accepted request body (413 above).")
    max_texts: int = Field(MAX_ITEMS, ge=1, le=MAX_ITEMS, description="Texts (and probes, and neighbours) per "
                           "request; at most the API schema's ceiling.")
    max_text_chars: int = Field(MAX_TEXT_CHARS, ge=16, le=MAX_TEXT_CHARS,
                                description="Characters per text; at most the API schema's ceiling.")

    rate_limit_per_minute: int = Field(600, ge=0, description="Deletion requests per minute per tenant "
                                       "(429 above); 0 turns the limit off.")

    # Model and unlearning
    model: str = Field("smollm2", description="Base model: 'smollm2', 'tiny', or a local HF folder.")
    device: DeviceChoice = Field("auto", description="auto picks cuda when available.")
    default_lineage: str = Field("default", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    method: str = Field("fit", description="Unlearning method, by registered name.")
    lora_rank: Literal[8, 16, 32, 64, 128, 256] = Field(8, description="LoRA rank (vLLM-servable values).")
    learning_rate: float | None = Field(None, gt=0, le=1, description="Unlearning learning rate; default: "
                                        "the measured profile of the base model, else the method's default.")
    retain_weight: float | None = Field(None, ge=0, description="Weight of the retain term; default as above.")
    batch_max_size: int = Field(8, ge=1, description="Requests per unlearning batch.")
    batch_max_wait_s: float = Field(2.0, ge=0, description="How long the oldest queued request may wait "
                                    "for a batch to fill.")
    max_attempts: int = Field(3, ge=1, description="Job attempts before a request goes to dead_letter.")
    retry_backoff_s: float = Field(30.0, ge=0, description="Wait before the first retry of a failed attempt; "
                                   "doubles with each further attempt.")
    retry_backoff_max_s: float = Field(900.0, ge=0, description="Longest wait between two attempts.")
    lease_ttl_s: float = Field(60.0, ge=1, description="Lineage lease lifetime; renewed every third of it "
                               "while a job runs, so a dead worker's lease lapses this long after it died.")
    stuck_after_s: float = Field(300.0, ge=1, description="A request this long in one non-terminal state "
                                 "(and no job running on its lineage) is nudged by the reconciler.")
    reconcile_interval_s: float = Field(60.0, ge=1, description="How often the reconciler runs (worker beat).")
    shred_interval_s: float = Field(60.0, ge=1, description="How often payload keys whose verification "
                                    "window has closed are destroyed (worker beat).")
    shutdown_grace_s: float = Field(60.0, ge=0, description="Time a running job gets to finish on a cold "
                                    "worker shutdown before its message is handed back.")
    verification_window_s: int = Field(7 * 24 * 3600, ge=0,
                                       description="How long a request's probes are re-checked before its "
                                       "payload key is destroyed.")

    # Network
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_workers: int = Field(1, ge=1, le=64, description="Intake API processes (uvicorn workers).")
    serve_host: str = "127.0.0.1"
    serve_port: int = Field(8001, ge=1, le=65535)
    serve_mode: Literal["adapter", "merged"] = Field(
        "adapter", description="Serving engine: 'adapter' keeps each version a LoRA adapter on the one base; "
        "'merged' serves a copy of the LoRA-targeted weights with the update merged in (no adapter overhead; "
        "those weights once more per loaded version, and once more while a swap builds).")
    worker_metrics_port: int = Field(9400, ge=0, le=65535, description="0 disables the worker's /metrics.")

    # Delivery of published versions to what serves them (forgetd.serving.sinks)
    serving_url: str = Field("", description="Where the embedded serving engine answers (a Service URL); the "
                             "worker then waits for the lineage alias to show each new version and asks the "
                             "canary through it. Empty: announce on Redis only.")
    vllm_url: str = Field("", description="A vLLM server (started with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True) "
                          "to load each version into under its versioned name; empty: no vLLM.")
    vllm_api_key: SecretStr | None = Field(None, description="Bearer token of the vLLM server (its --api-key).")
    vllm_served_base: str = Field("", description="Name of the base model on the vLLM server (its "
                                  "--served-model-name); written into resolver-folder configs.")
    vllm_store_dir: str = Field("", description="Path of the adapter store's root as the vLLM server sees it; "
                                "empty: the same path as this process's store.")
    vllm_resolver_dir: Path | None = Field(None, description="Folder vLLM's filesystem resolver reads "
                                           "(VLLM_LORA_RESOLVER_CACHE_DIR): versions are copied there instead "
                                           "of loaded through vllm_url, which then only asks the canary.")
    vllm_max_lora_rank: int = Field(256, description="The vLLM server's --max-lora-rank: no version with a "
                                    "higher rank is published. One of 1, 8, 16, 32, 64, 128, 256, 320, 512.")
    delivery_timeout_s: float = Field(60.0, gt=0, description="How long one delivery waits for a server "
                                      "(per HTTP call, and for the alias to move).")
    delivery_attempts: int = Field(4, ge=1, description="HTTP attempts per call to a serving server; waits "
                                   "double from delivery_backoff_s between them.")
    delivery_backoff_s: float = Field(0.5, ge=0, description="Wait before the second attempt of an HTTP call.")
    redeliver_after_s: float = Field(120.0, ge=1, description="A request this long published but not "
                                     "completed (its delivery failed) is delivered again by the reconciler.")
    canary_max_probes: int = Field(16, ge=0, description="Forget probes asked after each swap at most, taken "
                                   "in turn from the batch's requests; 0 turns the canary off.")

    @field_validator("vllm_max_lora_rank")
    @classmethod
    def _vllm_rank(cls, value: int) -> int:
        from adapters_store.compatibility import VLLM_RANKS

        if value not in VLLM_RANKS:
            raise ValueError(f"vllm_max_lora_rank {value} is not one vLLM accepts: {sorted(VLLM_RANKS)}")
        return value

    @model_validator(mode="after")
    def _resolver_needs_base(self) -> Settings:
        if self.vllm_resolver_dir is not None and not self.vllm_served_base:
            raise ValueError("vllm_resolver_dir needs vllm_served_base: vLLM's resolver loads only adapters "
                             "whose config names its served base")
        if self.store_url and self.vllm_url and self.vllm_resolver_dir is None:
            # The runtime API passes vLLM a path; a version in a bucket has none vLLM could open.
            raise ValueError("with a bucket store (store_url), vLLM gets versions through vllm_resolver_dir, "
                             "a folder its server reads; set it, or serve from a shared volume store")
        return self

    @field_validator("store_url")
    @classmethod
    def _s3_url(cls, value: str) -> str:
        if value and not _S3_URL.fullmatch(value):
            raise ValueError(f"store_url {value!r} is not s3://<bucket>[/<prefix>] (or empty for store_dir)")
        return value

    @field_validator("data_dir", "store_dir", "model_cache_dir", "vllm_resolver_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("lora_rank", mode="before")
    @classmethod
    def _rank_from_text(cls, value: object) -> object:
        # Environment variables are text, and a Literal of ints accepts no "16": read it as a number.
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.mode != "production":
            return self
        problems = [
            name
            for name in ("api_token", "admin_token")
            if getattr(self, name).get_secret_value() == PLACEHOLDER_TOKEN
        ]
        problems += [name for name in ("master_key", "hmac_key") if getattr(self, name) is None]
        if problems:
            raise ValueError(f"production mode needs explicit secrets; placeholder or missing: {problems}")
        return self

    @property
    def adapters_dir(self) -> Path:
        return self.store_dir or self.data_dir / "adapters"

    def open_adapter_store(self) -> AdapterStore:
        """The adapter store these settings name: the bucket of store_url, else the directory adapters_dir.
        A bucket's versions are verified into <data_dir>/store-cache before use."""
        from adapters_store import open_store

        return open_store(self.store_url or str(self.adapters_dir), cache_dir=self.data_dir / "store-cache",
                          endpoint_url=self.store_endpoint_url or None)

    @property
    def models_dir(self) -> Path:
        return self.model_cache_dir or self.data_dir / "models"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    def key(self, *parts: str) -> str:
        """A Redis key under this deployment's prefix: ``key("req", id)`` -> ``forgetd:req:<id>``."""
        return ":".join((self.key_prefix, *parts))

    def previous_master_key_bytes(self) -> list[bytes]:
        if self.previous_master_keys is None:
            return []
        encoded = [part.strip() for part in self.previous_master_keys.get_secret_value().split(",")]
        return [_decode_key("previous_master_keys", part) for part in encoded if part]

    def secret_bytes(self, name: Literal["master_key", "hmac_key"]) -> bytes:
        """The decoded secret; in embedded mode generated once into ``data_dir/keys``."""
        value = getattr(self, name)
        if value is not None:
            return _decode_key(name, value.get_secret_value())
        if self.mode == "production":
            raise ValueError(f"{name} is required in production mode")
        return _load_or_create_key_file(self.data_dir / "keys" / name)


def _decode_key(name: str, encoded: str) -> bytes:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as e:
        raise ValueError(f"{name} is not valid base64") from e
    if len(raw) != 32:
        raise ValueError(f"{name} must decode to 32 bytes, got {len(raw)}")
    return raw


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        return _decode_key(path.name, path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    tmp.chmod(0o600)
    # link() is atomic and refuses an existing target: when two processes race to create the key,
    # exactly one wins and the other reads the winner's complete file.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _decode_key(path.name, path.read_text().strip())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read on first use (in a start-up hook, never at import)."""
    return Settings()
