"""Fixtures for the adapter store tests: a store in tmp_path, a factory of tiny PEFT directories, and an
S3-compatible HTTP server (moto's S3 emulation; no real bucket is reachable from the test machines)."""

from __future__ import annotations

import json
import multiprocessing
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from safetensors.numpy import save_file
from werkzeug.serving import make_server

from adapters_store import AdapterStore, Manifest

MakeAdapter = Callable[..., Path]
PUBLISH_DEFAULTS: dict[str, Any] = {
    "base_model": "tiny-test-model",
    "method": "npo",
    "request_ids": ["req-1"],
    "metrics": {"forget_loss": 2.5, "retain_loss": 0.5},
}


def write_peft_dir(directory: Path, seed: int = 0) -> Path:
    """A minimal PEFT LoRA save directory: config plus a rank-8 A/B pair for one projection."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "bias": "none", "target_modules": ["q_proj"]}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    rng = np.random.default_rng(seed)
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    tensors = {
        f"{prefix}.lora_A.weight": rng.standard_normal((8, 16), dtype=np.float32),
        f"{prefix}.lora_B.weight": rng.standard_normal((16, 8), dtype=np.float32),
    }
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    return directory


@pytest.fixture
def store(tmp_path: Path) -> AdapterStore:
    return AdapterStore(tmp_path / "store")


@pytest.fixture
def make_adapter(tmp_path: Path) -> MakeAdapter:
    """Factory: ``make_adapter(seed)`` writes a distinct PEFT directory per call."""
    counter = iter(range(1_000_000))

    def make(seed: int = 0) -> Path:
        return write_peft_dir(tmp_path / f"adapter-{next(counter)}", seed)

    return make


@pytest.fixture
def publish(store: AdapterStore, make_adapter: MakeAdapter) -> Callable[..., Manifest]:
    """``publish(lineage, source=None, **overrides)`` with valid defaults for every required argument."""

    def _publish(lineage: str = "bot", source: Path | None = None, **overrides: Any) -> Manifest:
        kwargs = PUBLISH_DEFAULTS | overrides
        return store.publish(lineage, source or make_adapter(), **kwargs)

    return _publish


def run_in_processes(target: Callable[..., None], args: list[tuple[Any, ...]]) -> list[int | None]:
    """Run ``target(*a)`` for each ``a`` in its own forked process, all at once; their exit codes."""
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=target, args=a) for a in args]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    return [process.exitcode for process in processes]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of moto's S3 server on a free local port, for the whole session.

    The server handles one request at a time (``threaded=False``): moto checks a conditional PUT's
    precondition and stores the object in two steps, which S3 does atomically; serving requests one
    by one gives the emulator S3's atomicity, so the concurrency tests test the store, not a race in moto.
    """
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    with pytest.MonkeyPatch.context() as env:
        # botocore's credential chain reads these; moto accepts any.
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            thread.join(timeout=10)
            server.server_close()


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """A fresh, empty bucket (one per test), with a prefix inside it."""
    import s3fs

    bucket = f"store-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(endpoint_url=s3_endpoint, use_listings_cache=False).mkdir(bucket)
    return f"s3://{bucket}/forgetd/adapters"
