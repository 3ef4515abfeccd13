"""A pipeline context on the real Redis whose scheduler records what steps ask for."""

from __future__ import annotations

import pytest
import redis

from adapters_store import AdapterStore
from forgetd.ledger import open_ledger
from forgetd.pipeline.context import PipelineContext
from forgetd.settings import Settings
from tests.pipeline.recording import RecordingScheduler


@pytest.fixture
def scheduler() -> RecordingScheduler:
    return RecordingScheduler()


@pytest.fixture
def ctx(settings: Settings, redis_client: redis.Redis, scheduler: RecordingScheduler) -> PipelineContext:
    return PipelineContext(settings, redis_client, open_ledger(settings, redis_client),
                           AdapterStore(settings.adapters_dir), scheduler)
