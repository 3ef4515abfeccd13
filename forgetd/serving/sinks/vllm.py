"""vLLM: each version loaded under its immutable versioned name, proved live, then the older ones retired.

vLLM has no alias: clients name a version (``<lineage>-v<n>``), and vLLM keys its prefix cache by the
adapter, so a name must never mean two different weights. Two ways to place a version, as vLLM offers:

- :class:`RuntimeLoRA`: vLLM's runtime API (server started with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``):
  ``POST /v1/load_lora_adapter`` then ``/v1/models`` must list it from the path given.
- :class:`ResolverFolder`: the folder vLLM's filesystem resolver reads (``VLLM_LORA_RESOLVER_CACHE_DIR``);
  vLLM loads ``<folder>/<name>`` the first time a request names it, if its ``adapter_config.json``
  names the served base in ``base_model_name_or_path``.

:class:`VllmSink` places the version, asks the canary under its name (which also proves vLLM did not
answer with the base: where the base recalls a probe, a fallback fails the canary), and only then
retires the lineage's other versions, so there is always one version serving.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Protocol

import httpx

from adapters_store import AdapterRef, AdapterStore, InvalidNameError, Manifest
from adapters_store.fsio import fsync_dir, sha256_file
from adapters_store.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from forgetd.payload import Probe
from forgetd.serving.sinks.base import CanaryFailedError, Delivery, DeliveryError
from forgetd.serving.sinks.canary import run_canary
from forgetd.serving.sinks.http import EndpointError, ServingEndpoint

logger = logging.getLogger(__name__)

_MESSAGE_CHARS = 300  # of vLLM's error message kept in ours (it names files and shapes, never prompts)


class Placement(Protocol):
    """Where vLLM finds versions: place one, withdraw one, list the lineage's placed ones."""

    name: str

    def place(self, manifest: Manifest) -> None: ...

    def withdraw(self, served_name: str) -> None: ...

    def placed(self, lineage: str) -> list[str]: ...


def lineage_names(names: list[str], lineage: str) -> list[str]:
    """The served names among ``names`` that are versions of ``lineage`` (other names are not ours)."""
    found = []
    for name in names:
        try:
            ref = AdapterRef.parse(name)
        except InvalidNameError:
            continue
        if ref.lineage == lineage:
            found.append(name)
    return found


class RuntimeLoRA:
    """vLLM's runtime LoRA API; ``server_store_root`` is where the vLLM server sees the store's root."""

    name = "vllm"

    def __init__(self, endpoint: ServingEndpoint, store: AdapterStore, server_store_root: str | None = None) -> None:
        self._endpoint = endpoint
        self._store = store
        self._server_root = PurePosixPath(server_store_root) if server_store_root else None

    def server_path(self, manifest: Manifest) -> str:
        local = self._store.verified_path(manifest.lineage, manifest.version)
        if self._server_root is None:
            return str(local)
        return str(self._server_root / local.relative_to(self._store.root).as_posix())

    def place(self, manifest: Manifest) -> None:
        name, path = manifest.ref.served_name, self.server_path(manifest)
        response = self._endpoint.request("POST", "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path})
        # vLLM answers 400 for a name it already holds: a redelivery, if it holds it from this very path.
        if response.status_code not in (200, 400):
            raise DeliveryError(self.name, name, f"load refused: HTTP {response.status_code} {_message(response)}")
        card = self._endpoint.models().get(name)
        if card is None:
            detail = f": {_message(response)}" if response.status_code == 400 else ""
            raise DeliveryError(self.name, name, f"not listed in /v1/models after loading{detail}")
        if card.get("root") != path:
            raise DeliveryError(self.name, name, f"vLLM holds this name from {card.get('root')!r}, not {path!r}; "
                                "a served name is never reused")

    def withdraw(self, served_name: str) -> None:
        response = self._endpoint.request("POST", "/v1/unload_lora_adapter", json={"lora_name": served_name})
        if response.status_code not in (200, 404):  # 404: not loaded (any more), which is what we want
            raise DeliveryError(self.name, served_name,
                                f"unload refused: HTTP {response.status_code} {_message(response)}")

    def placed(self, lineage: str) -> list[str]:
        return lineage_names(list(self._endpoint.models()), lineage)


class ResolverFolder:
    """Versions copied into vLLM's filesystem-resolver folder, one sub-folder per served name."""

    name = "resolver"

    def __init__(self, store: AdapterStore, directory: Path, served_base: str) -> None:
        if not served_base:
            raise ValueError("the resolver folder needs the served base model's name (vllm_served_base)")
        self._store = store
        self._directory = directory
        self._served_base = served_base

    def place(self, manifest: Manifest) -> None:
        name = manifest.ref.served_name
        target = self._directory / name
        if target.exists():
            self._check_existing(target, manifest)
            return
        self._directory.mkdir(parents=True, exist_ok=True)
        # Built beside its final place and renamed in: the resolver never sees a half-written folder.
        staging = self._directory / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            self._write(staging, self._store.verified_path(manifest.lineage, manifest.version))
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        fsync_dir(self._directory)

    def _write(self, staging: Path, source: Path) -> None:
        config = json.loads((source / ADAPTER_CONFIG).read_text())
        config["base_model_name_or_path"] = self._served_base
        (staging / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
        shutil.copyfile(source / ADAPTER_WEIGHTS, staging / ADAPTER_WEIGHTS)
        for path in (staging / ADAPTER_CONFIG, staging / ADAPTER_WEIGHTS):
            with path.open("rb") as f:
                os.fsync(f.fileno())
        fsync_dir(staging)

    def _check_existing(self, target: Path, manifest: Manifest) -> None:
        name = manifest.ref.served_name
        try:
            same = sha256_file(target / ADAPTER_WEIGHTS) == manifest.files.get(ADAPTER_WEIGHTS)
            base = json.loads((target / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
        except (OSError, ValueError) as e:
            raise DeliveryError(self.name, name, f"existing folder unreadable: {type(e).__name__}") from e
        if not same or base != self._served_base:
            raise DeliveryError(self.name, name, f"{target} exists with other weights or base; a served name "
                                "is never reused")

    def withdraw(self, served_name: str) -> None:
        target = self._directory / served_name
        if not target.exists():
            return
        # Renamed away first: the resolver either finds the whole folder or none of it.
        trash = self._directory / f".tmp-withdrawn-{served_name}-{uuid.uuid4().hex[:8]}"
        target.rename(trash)
        shutil.rmtree(trash)

    def placed(self, lineage: str) -> list[str]:
        if not self._directory.is_dir():
            return []
        return lineage_names(sorted(p.name for p in self._directory.iterdir() if p.is_dir()), lineage)


class VllmSink:
    """Place, check live and canary (with an endpoint), retire the lineage's other versions."""

    def __init__(self, placement: Placement, endpoint: ServingEndpoint | None, served_base: str = "") -> None:
        self._placement = placement
        self._endpoint = endpoint
        self._served_base = served_base

    @property
    def name(self) -> str:
        return self._placement.name

    def deliver(self, delivery: Delivery) -> None:
        manifest = delivery.manifest
        served = manifest.ref.served_name
        try:
            self._placement.place(manifest)
            if self._endpoint is not None and delivery.probes:
                self._canary(self._endpoint, delivery)
            for other in self._placement.placed(manifest.lineage):
                if other != served:
                    self._placement.withdraw(other)
                    logger.info("%s: %s retired after %s", self.name, other, served)
        except (EndpointError, OSError) as e:
            raise DeliveryError(self.name, served, f"{type(e).__name__}: {e}") from e

    def _canary(self, endpoint: ServingEndpoint, delivery: Delivery) -> None:
        ref, probes = delivery.manifest.ref, delivery.probes
        result = run_canary(endpoint, ref.served_name, probes, allowance=delivery.canary_allowance,
                            lineage=ref.lineage)
        if result.passed:
            return
        self._placement.withdraw(ref.served_name)  # the versions before it are not retired yet: they keep serving
        detail = self._fallback_detail(endpoint, probes)
        raise CanaryFailedError(self.name, ref.served_name, result.recalled, result.asked, result.allowed, detail)

    def _fallback_detail(self, endpoint: ServingEndpoint, probes: Sequence[Probe]) -> str:
        """Whether the base recalls as much: then vLLM most likely answered without the adapter."""
        if not self._served_base:
            return ""
        try:
            base = run_canary(endpoint, self._served_base, probes)
        except EndpointError:
            return ""  # only a hint for the operator; the canary's verdict stands without it
        return f"; the base model recalls {base.recalled} of them"


def _message(response: httpx.Response) -> str:
    """vLLM's error message: ``{"message": ...}`` (older servers) or ``{"error": {"message": ...}}``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:_MESSAGE_CHARS]
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("message")
    return str(message or "")[:_MESSAGE_CHARS]
