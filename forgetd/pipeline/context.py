"""What pipeline steps need, built once per worker process from the settings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from adapters_store import AdapterStore
from forgetd.filters.duplicates import ExactDuplicateIndex
from forgetd.filters.near_duplicates import NearDuplicateIndex
from forgetd.ledger import Ledger, open_ledger
from forgetd.pipeline.lineage_queue import LineageQueue
from forgetd.pipeline.scheduling import TaskScheduler
from forgetd.settings import Settings

if TYPE_CHECKING:  # torch-heavy types; the API process builds contexts too and must not import torch
    import torch

    from forgetd.serving.sinks import Sink
    from forgetd.unlearning import UnlearningConfig


@dataclass
class PipelineContext:
    settings: Settings
    redis: redis.Redis
    ledger: Ledger
    store: AdapterStore
    scheduler: TaskScheduler

    @classmethod
    def from_settings(cls, settings: Settings, scheduler: TaskScheduler) -> PipelineContext:
        client = redis.Redis.from_url(settings.redis_url)
        return cls(settings, client, open_ledger(settings, client), settings.open_adapter_store(),
                   scheduler)

    @cached_property
    def duplicates(self) -> ExactDuplicateIndex:
        return ExactDuplicateIndex(self.redis, self.settings.key_prefix, self.ledger.fingerprinter)

    @cached_property
    def near_duplicates(self) -> NearDuplicateIndex:
        return NearDuplicateIndex(self.redis, self.settings.key_prefix, self.ledger.fingerprinter)

    @cached_property
    def base_model_path(self) -> Path:
        from forgetd.models import resolve_model_path

        return resolve_model_path(self.settings.model, self.settings.models_dir)

    @cached_property
    def base_model_config(self) -> dict[str, Any] | None:
        """The base model's ``config.json`` (architecture, dimensions), None when it has none."""
        try:
            return dict(json.loads((self.base_model_path / "config.json").read_text()))
        except (OSError, ValueError):
            return None

    @cached_property
    def device(self) -> torch.device:
        from forgetd.models import select_device

        return select_device(self.settings.device)

    @cached_property
    def unlearning_config(self) -> UnlearningConfig:
        from forgetd.unlearning import UnlearningConfig

        overrides = {"learning_rate": self.settings.learning_rate, "retain_weight": self.settings.retain_weight}
        return UnlearningConfig.for_model(self.settings.model, method=self.settings.method,
                                          rank=self.settings.lora_rank,
                                          **{k: v for k, v in overrides.items() if v is not None})

    @cached_property
    def sinks(self) -> list[Sink]:
        """Where published versions are delivered (the embedded engines, vLLM), built once per process."""
        from forgetd.serving.sinks import build_sinks

        # Through self.announce at call time, not a bound copy: tests and subclasses may replace it.
        return build_sinks(self.settings, self.store, lambda lineage, version: self.announce(lineage, version))

    def queue(self, lineage: str) -> LineageQueue:
        return LineageQueue(self.redis, self.settings.key_prefix, lineage)

    def announce(self, lineage: str, version: int) -> None:
        """Tell serving processes a new version is current (the store's pointer stays the truth)."""
        from forgetd.serving.notify import announce_version

        announce_version(self.redis, self.settings.key_prefix, lineage, version)

    def schedule_shred(self, request_id: str, when: float) -> None:
        self.redis.zadd(self.settings.key("shred"), {request_id: when})

    def shred_due(self, now: float) -> list[str]:
        """Crypto-shred every payload whose verification window has closed; returns their ids."""
        key = self.settings.key("shred")
        due = [member.decode() for member in self.redis.zrangebyscore(key, "-inf", now)]
        for request_id in due:
            self.ledger.shred(request_id)
            self.redis.zrem(key, request_id)
        return due
