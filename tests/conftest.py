"""Fixtures shared by every test: a real Redis with a key prefix per test, settings, the tiny model."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from forgetd.settings import Settings

REDIS_URL = os.environ.get("FORGETD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
API_TOKEN = "test-token"
ADMIN_TOKEN = "test-admin-token"


@pytest.fixture(scope="session")
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as e:
        pytest.fail(f"the tests need a Redis server on {REDIS_URL} (make test starts one): {e}")
    return REDIS_URL


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; every key under it (and the test's Celery queues) is deleted afterwards."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{prefix}*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def model_cache_dir() -> Path:
    """Built test models, kept across runs (the tiny model is taught once, then reused)."""
    default = Path(__file__).resolve().parent.parent / ".cache" / "test-models"
    path = Path(os.environ.get("FORGETD_TEST_MODEL_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def settings(tmp_path: Path, key_prefix: str, redis_url: str, model_cache_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # tests must not read a developer's .env
        data_dir=tmp_path / "data",
        model_cache_dir=model_cache_dir,
        redis_url=redis_url,
        key_prefix=key_prefix,
        queue_name=f"{key_prefix}-admit",
        gpu_queue_name=f"{key_prefix}-gpu",
        api_token=API_TOKEN,
        admin_token=ADMIN_TOKEN,
        model="tiny",
        device="cpu",
        worker_metrics_port=0,
    )


@pytest.fixture(scope="session")
def tiny_model_dir(model_cache_dir: Path) -> Path:
    """The default tiny model, taught the default fictitious people (built once, content-hashed)."""
    from forgetd.models import resolve_model_path

    return resolve_model_path("tiny", model_cache_dir)
