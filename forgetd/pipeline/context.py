"""What pipeline steps need, built once per worker process from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import redis

from adapters_store import AdapterStore
from forgetd.filters.duplicates import ExactDuplicateIndex
from forgetd.ledger import Ledger, open_ledger
from forgetd.pipeline.lineage_queue import LineageQueue
from forgetd.pipeline.scheduling import TaskScheduler
from forgetd.settings import Settings

if TYPE_CHECKING:  # torch-heavy types; the API process builds contexts too and must not import torch
    import torch

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
        return cls(settings, client, open_ledger(settings, client), AdapterStore(settings.adapters_dir),
                   scheduler)

    @cached_property
    def duplicates(self) -> ExactDuplicateIndex:
        return ExactDuplicateIndex(self.redis, self.settings.key_prefix, self.ledger.fingerprinter)

    @cached_property
    def base_model_path(self) -> Path:
        from forgetd.models import resolve_model_path

        return resolve_model_path(self.settings.model, self.settings.models_dir)

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
