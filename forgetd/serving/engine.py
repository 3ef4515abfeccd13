"""The embedded serving engine: one base model, one peft LoRA adapter per served lineage version.

Names a request may use: the base model's id, a served version ``<lineage>-v<version>``, or the
lineage's name, an alias of its current version. A swap loads and checks the new version first, then
moves the alias; the versions that are neither current nor the one just replaced are unloaded by the
next sync once no running request holds them.

Locks, always taken in this order: ``_sync_lock`` (one sync at a time, the only place adapters are
loaded or unloaded) -> ``_model_lock`` (peft's active adapter is global state, so one generate, load or
unload at a time) -> ``_state_lock`` (names, aliases and refcounts; held briefly, never around torch).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import PeftModel
from safetensors import safe_open

from adapters_store import AdapterRef, AdapterStore, IntegrityError, Manifest, StoreError
from forgetd.metrics import ADAPTER_SWAP_DURATION, ADAPTER_SWAPS, COMPLETION_TOKENS, SERVED_ADAPTER_VERSION
from forgetd.serving.domain import (
    AdapterLoadError,
    CompletionResult,
    GenerationParams,
    Lease,
    ServedModel,
    UnknownModelError,
)
from forgetd.serving.generation import generate_one

if TYPE_CHECKING:
    from forgetd.models import LoadedModel
    from forgetd.settings import Settings

logger = logging.getLogger(__name__)

ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"


@dataclass
class _Adapter:
    """A version loaded into the peft model; ``retired`` ones answer no new request."""

    ref: AdapterRef
    path: Path
    created: int
    refs: int = 0
    retired: bool = False


class EmbeddedEngine:
    """Serves completions from a base model and the adapter store's current versions.

    The engine owns ``loaded.model``: peft injects LoRA layers into it when the first version loads.
    """

    def __init__(self, loaded: LoadedModel, store: AdapterStore, declared_lineages: Sequence[str] = ()) -> None:
        self._loaded = loaded
        self._store = store
        # Lineages whose alias answers with the base until their first version: clients can name the
        # alias from day one and never change it.
        self._declared = frozenset(declared_lineages)
        self._created = int(time.time())
        self._peft: PeftModel | None = None  # set when the first adapter is loaded
        self._active: str | None = None  # adapter set on the peft model; None: unknown, set it again
        self._adapters: dict[str, _Adapter] = {}  # served_name -> loaded adapter, retired ones included
        self._aliases: dict[str, str] = {}  # lineage -> served_name of its current version
        self._refused: set[str] = set()  # tampered versions: never retried, counted once
        self._sync_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._state_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedEngine:
        """Load the configured base model on the configured device and open the adapter store."""
        from forgetd.models import load_model, resolve_model_path, select_device

        path = resolve_model_path(settings.model, settings.models_dir)
        loaded = load_model(path, select_device(settings.device))
        return cls(loaded, AdapterStore(settings.adapters_dir), declared_lineages=[settings.default_lineage])

    @property
    def base_model_id(self) -> str:
        return self._loaded.name

    def served_version(self, lineage: str) -> int | None:
        """The version the lineage's alias answers with, ``None`` while it has none."""
        with self._state_lock:
            name = self._aliases.get(lineage)
            return self._adapters[name].ref.version if name else None

    def models(self) -> list[ServedModel]:
        """The base, every loaded (non-retired) version and every lineage alias."""
        base = self.base_model_id
        cards = [ServedModel(base, "base", str(self._loaded.path), None, self._created)]
        with self._state_lock:
            for name, adapter in sorted(self._adapters.items()):
                if not adapter.retired:
                    cards.append(ServedModel(name, "version", str(adapter.path), base, adapter.created))
            for lineage, name in sorted(self._aliases.items()):
                cards.append(ServedModel(lineage, "alias", name, base, self._adapters[name].created))
            for lineage in sorted(self._declared - self._aliases.keys()):
                cards.append(ServedModel(lineage, "alias", base, base, self._created))
        return cards

    # Requests

    @contextmanager
    def acquire(self, model: str) -> Iterator[Lease]:
        """Resolve ``model`` once and keep that version loaded until the block ends.

        Raises :class:`UnknownModelError` when the name is not served.
        """
        lease = self._resolve(model)
        try:
            yield lease
        finally:
            if lease.adapter is not None:
                with self._state_lock:
                    self._adapters[lease.adapter].refs -= 1

    def generate(self, lease: Lease, prompts: Sequence[str], params: GenerationParams) -> CompletionResult:
        """Complete each prompt with the lease's version; the model is taken one prompt at a time."""
        completions = []
        for prompt in prompts:
            with self._model_lock, self._using(lease.adapter) as model:
                completions.append(generate_one(model, self._loaded.tokenizer, prompt, params))
            COMPLETION_TOKENS.inc(completions[-1].completion_tokens)
        return CompletionResult(lease.served_name, completions)

    def complete(self, model: str, prompts: Sequence[str], params: GenerationParams) -> CompletionResult:
        """Resolve ``model`` and complete every prompt with the version it named at the start."""
        with self.acquire(model) as lease:
            return self.generate(lease, prompts, params)

    def _resolve(self, model: str) -> Lease:
        if model == self.base_model_id:
            return Lease(model, model, None)
        with self._state_lock:
            if model in self._declared and model not in self._aliases:
                return Lease(model, self.base_model_id, None)
            name = self._aliases.get(model, model)
            adapter = self._adapters.get(name)
            if adapter is None or adapter.retired:
                raise UnknownModelError(model)
            adapter.refs += 1
            return Lease(model, name, name)

    @contextmanager
    def _using(self, adapter: str | None) -> Iterator[Any]:
        """The module to generate with, ``adapter`` active (None: the base); caller holds the model lock."""
        if self._peft is None:
            yield self._loaded.model
        elif adapter is None:
            # While peft wraps the base, its LoRA layers are live: switch them off to answer as the base.
            with self._peft.disable_adapter():
                yield self._peft
        else:
            if adapter != self._active:
                self._peft.set_adapter(adapter)
                self._active = adapter
            yield self._peft

    # Swaps

    def sync_from_store(self) -> None:
        """Bring every lineage's alias to the store's current pointer; unload what nothing uses.

        The store is the truth: this runs on start-up, periodically as a safety net, and after any
        missed notification. A version that fails to load leaves the previous one serving.
        """
        for lineage in self._store.lineages():
            self._sync(lineage, time.monotonic())

    def sync_lineage(self, lineage: str, *, started_at: float | None = None) -> None:
        """Move ``lineage``'s alias to its current store version; ``started_at`` (monotonic) times it."""
        started = time.monotonic() if started_at is None else started_at
        # Announcements name lineages from outside: ignore unknown ones before they become metric labels.
        if lineage not in self._store.lineages():
            logger.warning("sync asked for unknown lineage %r; ignored", lineage)
            return
        self._sync(lineage, started)

    def _sync(self, lineage: str, started: float) -> None:
        with self._sync_lock:
            try:
                swapped = self._swap_to_current(lineage)
            except IntegrityError:
                logger.error("adapter lineage %s: current version failed its integrity check", lineage)
                ADAPTER_SWAPS.labels(lineage, "integrity_error").inc()
                return
            except (AdapterLoadError, StoreError, OSError, ValueError, RuntimeError) as e:
                logger.error("adapter lineage %s: swap failed: %s", lineage, e)
                ADAPTER_SWAPS.labels(lineage, "failed").inc()
                return
            finally:
                self._unload_retired()
        if swapped:
            ADAPTER_SWAPS.labels(lineage, "ok").inc()
            ADAPTER_SWAP_DURATION.observe(time.monotonic() - started)

    def _swap_to_current(self, lineage: str) -> bool:
        """Load the current version if needed and move the alias; False when there was nothing to do."""
        version = self._store.current_version(lineage)
        if version is None:
            return False
        name = AdapterRef(lineage, version).served_name
        with self._state_lock:
            if self._aliases.get(lineage) == name or name in self._refused:
                return False
            loaded = name in self._adapters
        if not loaded:
            self._load(self._store.manifest(lineage, version))
        self._move_alias(lineage, name)
        return True

    def _load(self, manifest: Manifest) -> None:
        """Verify a version's files and add it to the peft model under its served name."""
        ref = manifest.ref
        name = ref.served_name
        if manifest.base_model != self.base_model_id:
            # A version trained on another base could load (same shapes) and answer nonsense.
            with self._state_lock:
                self._refused.add(name)
            raise AdapterLoadError(name, f"trained for base {manifest.base_model!r}, "
                                         f"this engine serves {self.base_model_id!r}")
        try:
            path = self._store.verified_path(ref.lineage, ref.version)
        except IntegrityError:
            with self._state_lock:
                self._refused.add(name)
            raise
        _check_finite(path, name)
        with self._model_lock:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self._loaded.model, path, adapter_name=name)
            else:
                self._peft.load_adapter(path, adapter_name=name)
            self._active = None  # loading may move peft's active adapter
        with self._state_lock:
            self._adapters[name] = _Adapter(ref, path, _timestamp(manifest.created_at))
        logger.info("adapter %s loaded", name)

    def _move_alias(self, lineage: str, name: str) -> None:
        """Point the alias at ``name``; keep it and the one it replaces, retire the lineage's others."""
        with self._state_lock:
            previous = self._aliases.get(lineage)
            self._aliases[lineage] = name
            for served, adapter in self._adapters.items():
                if adapter.ref.lineage == lineage:
                    adapter.retired = served not in (name, previous)
            version = self._adapters[name].ref.version
        SERVED_ADAPTER_VERSION.labels(lineage).set(version)
        logger.info("lineage %s now served by %s (was %s)", lineage, name, previous)

    def _unload_retired(self) -> None:
        """Delete retired adapters no request holds (caller holds the sync lock, so none reloads)."""
        with self._state_lock:
            idle = [name for name, a in self._adapters.items() if a.retired and a.refs == 0]
            for name in idle:
                del self._adapters[name]
        if not idle or self._peft is None:
            return
        with self._model_lock:
            for name in idle:
                self._peft.delete_adapter(name)
                logger.info("adapter %s unloaded", name)
            self._active = None


def _timestamp(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def _check_finite(path: Path, served_name: str) -> None:
    """Refuse a version whose LoRA weights hold NaN or inf before it touches the served model."""
    weights = path / ADAPTER_WEIGHTS_FILE
    if not weights.is_file():
        raise AdapterLoadError(served_name, f"no {ADAPTER_WEIGHTS_FILE}")
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open handles are not mappings
            tensor = f.get_tensor(key)
            if not bool(torch.isfinite(tensor).all()):
                raise AdapterLoadError(served_name, f"non-finite values in {key}")
