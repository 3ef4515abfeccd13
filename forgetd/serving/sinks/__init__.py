"""Delivery of published adapter versions to what serves them, with a canary after each swap.

``base`` (the :class:`Sink` protocol, :class:`Delivery`, errors), ``embedded`` (forgetd's engines: Redis
announcement, alias check), ``vllm`` (vLLM's runtime LoRA API or its filesystem-resolver folder),
``canary`` (forget probes asked through the served name), ``delivery`` (all sinks, rollback), ``http``
(the retried HTTP client). Torch-free: the worker imports this before it ever loads a model.
"""

from __future__ import annotations

from collections.abc import Callable

from adapters_store import AdapterStore
from forgetd.serving.sinks.base import CanaryFailedError, Delivery, DeliveryError, Sink
from forgetd.serving.sinks.delivery import DeliveryOutcome, deliver
from forgetd.serving.sinks.embedded import EmbeddedSink
from forgetd.serving.sinks.http import RetryPolicy, ServingEndpoint
from forgetd.serving.sinks.vllm import ResolverFolder, RuntimeLoRA, VllmSink
from forgetd.settings import Settings

__all__ = [
    "CanaryFailedError",
    "Delivery",
    "DeliveryError",
    "DeliveryOutcome",
    "Sink",
    "build_sinks",
    "deliver",
]


def build_sinks(settings: Settings, store: AdapterStore, announce: Callable[[str, int], None]) -> list[Sink]:
    """The sinks the settings ask for: the embedded engines always (an announcement costs nothing
    when none listens), and vLLM when a URL or a resolver folder is configured (with both, versions
    go into the folder and the URL is used for the canary, which makes vLLM resolve the name)."""
    retry = RetryPolicy(attempts=settings.delivery_attempts, backoff_s=settings.delivery_backoff_s)
    serving = (ServingEndpoint(settings.serving_url, timeout_s=settings.delivery_timeout_s, retry=retry)
               if settings.serving_url else None)
    sinks: list[Sink] = [EmbeddedSink(announce, serving, timeout_s=settings.delivery_timeout_s)]
    vllm = _vllm_endpoint(settings, retry) if settings.vllm_url else None
    if settings.vllm_resolver_dir is not None:
        folder = ResolverFolder(store, settings.vllm_resolver_dir, settings.vllm_served_base)
        sinks.append(VllmSink(folder, vllm, settings.vllm_served_base))
    elif vllm is not None:
        sinks.append(VllmSink(RuntimeLoRA(vllm, store, settings.vllm_store_dir or None), vllm,
                              settings.vllm_served_base))
    return sinks


def _vllm_endpoint(settings: Settings, retry: RetryPolicy) -> ServingEndpoint:
    api_key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
    return ServingEndpoint(settings.vllm_url, api_key=api_key, timeout_s=settings.delivery_timeout_s, retry=retry)
