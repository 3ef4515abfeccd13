"""The embedded serving engine: one base model, each served lineage version on top of it.

Names a request may use: the base model's id, a served version ``<lineage>-v<version>``, the lineage's
name (an alias of its current version), or a name an operator loaded through ``/v1/load_lora_adapter``.

Atomic swaps: a request resolves its name once, at its start, into a lease on one version, and every
token of every prompt of that request comes from that version; the alias moves in one assignment under
``_state_lock``, so every request resolved after the move gets the new version. A swap loads and checks
the new version first (hashes, base model, finite weights), then moves the alias; the versions that are
neither current, nor the one just replaced, nor loaded by name, are unloaded once no lease holds them.
The store's pointer may move back (a rollback): the sync follows it whichever way it moves.

How a version generates (peft adapter or merged weights) is the backend's business (``backends.py``).

Locks, always taken in this order: ``_sync_lock`` (one sync or named load at a time, the only places
versions are loaded or unloaded) -> the backend's generation lock -> ``_state_lock`` (names, aliases and
refcounts; held briefly, never around torch).
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
from typing import TYPE_CHECKING

import jinja2
import torch
from safetensors import safe_open

from adapters_store import AdapterRef, AdapterStore, IntegrityError, Manifest, StoreError
from forgetd.metrics import ADAPTER_SWAP_DURATION, ADAPTER_SWAPS, COMPLETION_TOKENS, SERVED_ADAPTER_VERSION
from forgetd.serving.backends import make_backend
from forgetd.serving.domain import (
    AdapterLoadError,
    AdapterRequestError,
    ChatTemplateError,
    Completion,
    CompletionResult,
    GenerationParams,
    Lease,
    ServedModel,
    ServeMode,
    UnknownModelError,
)
from forgetd.serving.generation import SnapshotStreamer, generate_one
from forgetd.serving.lora import ADAPTER_WEIGHTS_FILE
from forgetd.serving.named import store_version_at, validate_adapter_name
from forgetd.serving.streaming import ThreadedStream

if TYPE_CHECKING:
    from collections.abc import Callable

    from forgetd.models import LoadedModel
    from forgetd.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class _Adapter:
    """A loaded version; ``retired`` ones answer no new request, ``named`` ones the sync never retires."""

    ref: AdapterRef
    path: Path
    created: int
    named: bool = False
    refs: int = 0
    retired: bool = False


class EmbeddedEngine:
    """Serves completions from a base model and the adapter store's current versions.

    The engine owns ``loaded.model``: in adapter mode the projections an adapter targets are wrapped in
    serving LoRA layers when the first version loads.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        store: AdapterStore,
        declared_lineages: Sequence[str] = (),
        *,
        mode: ServeMode = "adapter",
    ) -> None:
        self._loaded = loaded
        self._store = store
        # Lineages whose alias answers with the base until their first version: clients can name the
        # alias from day one and never change it.
        self._declared = frozenset(declared_lineages)
        self._created = int(time.time())
        self._backend = make_backend(mode, loaded.model)
        self._adapters: dict[str, _Adapter] = {}  # served name -> loaded adapter, retired ones included
        self._aliases: dict[str, str] = {}  # lineage -> served name of its current version
        self._refused: set[str] = set()  # tampered versions: never retried, counted once
        self._sync_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self.mode = mode

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedEngine:
        """Load the configured base model on the configured device and open the adapter store."""
        from forgetd.models import load_model, resolve_model_path, select_device

        path = resolve_model_path(settings.model, settings.models_dir)
        loaded = load_model(path, select_device(settings.device))
        return cls(loaded, settings.open_adapter_store(), declared_lineages=[settings.default_lineage],
                   mode=settings.serve_mode)

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

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt the tokenizer's chat template makes of ``messages``, ready for the assistant's turn."""
        tokenizer = self._loaded.tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ChatTemplateError(f"the tokenizer of {self.base_model_id} has no chat template; "
                                    "use /v1/completions with a prompt instead")
        try:
            prompt = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except jinja2.TemplateError as e:
            # The error's kind only: a template's message may quote the messages.
            raise ChatTemplateError(f"the chat template refused the messages: {type(e).__name__}") from e
        return str(prompt)

    @contextmanager
    def acquire(self, model: str) -> Iterator[Lease]:
        """Resolve ``model`` once and keep that version loaded until the block ends.

        Raises :class:`UnknownModelError` when the name is not served.
        """
        lease = self._resolve(model)
        try:
            yield lease
        finally:
            self._release(lease)

    def generate(
        self, lease: Lease, prompts: Sequence[str], params: GenerationParams, *, templated: bool = False
    ) -> CompletionResult:
        """Complete each prompt with the lease's version; the model is taken one prompt at a time."""
        completions = [self._generate(lease, prompt, params, templated=templated) for prompt in prompts]
        return CompletionResult(lease.served_name, completions)

    def complete(
        self, model: str, prompts: Sequence[str], params: GenerationParams, *, templated: bool = False
    ) -> CompletionResult:
        """Resolve ``model`` and complete every prompt with the version it named at the start."""
        with self.acquire(model) as lease:
            return self.generate(lease, prompts, params, templated=templated)

    def stream(
        self, model: str, prompts: Sequence[str], params: GenerationParams, *, templated: bool = False
    ) -> ThreadedStream:
        """Resolve ``model`` now (an unknown name raises before anything streams), then generate on a
        thread that holds the lease until it ends; the stream yields the text as it grows."""
        lease = self._resolve(model)

        def generate(prompt: str, on_text: Callable[[str], None], cancel: threading.Event) -> Completion:
            streamer = SnapshotStreamer(self._loaded.tokenizer, on_text)
            return self._generate(lease, prompt, params, templated=templated, streamer=streamer, cancel=cancel)

        return ThreadedStream(lease.served_name, prompts, params.stop, generate, lambda: self._release(lease)).start()

    def _generate(
        self,
        lease: Lease,
        prompt: str,
        params: GenerationParams,
        *,
        templated: bool,
        streamer: SnapshotStreamer | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        with self._backend.generating(lease.adapter) as model:
            completion = generate_one(model, self._loaded.tokenizer, prompt, params, templated=templated,
                                      streamer=streamer, cancel=cancel)
        COMPLETION_TOKENS.inc(completion.completion_tokens)
        return completion

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

    def _release(self, lease: Lease) -> None:
        if lease.adapter is not None:
            with self._state_lock:
                self._adapters[lease.adapter].refs -= 1

    # Swaps

    def sync_from_store(self) -> None:
        """Bring every lineage's alias to the store's current pointer; unload what nothing uses.

        The store is the truth: this runs on start-up, periodically as a safety net, and after any
        missed notification. A version that fails to load leaves the previous one serving.
        """
        for lineage in self._store.lineages():
            self._sync(lineage, time.monotonic())
        with self._sync_lock:
            self._unload_retired()  # also what an unload by name left behind while a request held it

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
            except (AdapterLoadError, StoreError, OSError, ValueError, RuntimeError, KeyError) as e:
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
            self._load(self._store.manifest(lineage, version), name)
        self._move_alias(lineage, name)
        return True

    def _load(self, manifest: Manifest, name: str, *, named: bool = False) -> None:
        """Verify a version's files and make it servable under ``name``; only then is it visible."""
        if manifest.base_model != self.base_model_id:
            # A version trained on another base could load (same shapes) and answer nonsense.
            with self._state_lock:
                self._refused.add(name)
            raise AdapterLoadError(name, f"trained for base {manifest.base_model!r}, "
                                         f"this engine serves {self.base_model_id!r}")
        try:
            path = self._store.verified_path(manifest.ref.lineage, manifest.ref.version)
        except IntegrityError:
            with self._state_lock:
                self._refused.add(name)
            raise
        _check_finite(path, name)
        self._backend.add(name, path)
        with self._state_lock:
            self._adapters[name] = _Adapter(manifest.ref, path, _timestamp(manifest.created_at), named=named)
        logger.info("adapter %s loaded (%s mode)", name, self.mode)

    def _move_alias(self, lineage: str, name: str) -> None:
        """Point the alias at ``name``; keep it and the one it replaces, retire the lineage's others."""
        with self._state_lock:
            previous = self._aliases.get(lineage)
            self._aliases[lineage] = name
            for served, adapter in self._adapters.items():
                if adapter.ref.lineage == lineage and not adapter.named:
                    adapter.retired = served not in (name, previous)
            version = self._adapters[name].ref.version
        SERVED_ADAPTER_VERSION.labels(lineage).set(version)
        logger.info("lineage %s now served by %s (was %s)", lineage, name, previous)

    def _unload_retired(self) -> None:
        """Unload retired adapters no request holds (caller holds the sync lock, so none reloads)."""
        with self._state_lock:
            idle = [name for name, a in self._adapters.items() if a.retired and a.refs == 0]
            for name in idle:
                del self._adapters[name]
        for name in idle:
            self._backend.remove(name)
            logger.info("adapter %s unloaded", name)

    # Loading by name (vLLM's runtime LoRA API)

    def load_named_adapter(self, name: str, path: str) -> None:
        """Serve the store version at ``path`` under ``name`` until :meth:`unload_named_adapter`.

        Raises :class:`AdapterRequestError` with vLLM's status and wording (400 for a name in use, 404
        for a path with no adapter) and forgetd's own refusals (paths outside the store, a name that
        says another version, files failing their hashes).
        """
        validate_adapter_name(name)
        ref = store_version_at(self._store, path)
        if _names_a_version(name) and name != ref.served_name:
            raise AdapterRequestError(400, "InvalidUserInput", f"lora_name {name!r} names another version "
                                      f"than the one at lora_path ({ref.served_name})", "lora_name")
        with self._sync_lock:
            self._check_name_free(name)
            try:
                self._load(self._store.manifest(ref.lineage, ref.version), name, named=True)
            except (AdapterLoadError, StoreError, OSError, ValueError, RuntimeError, KeyError) as e:
                with self._state_lock:
                    self._refused.discard(name)  # a name given by hand may be given again, fixed
                raise AdapterRequestError(400, "BadRequestError", f"adapter {name!r} not loaded: {e}") from e

    def unload_named_adapter(self, name: str) -> None:
        """Stop serving ``name`` (404 when it is not served); requests holding it finish on it first."""
        with self._sync_lock, self._state_lock:
            adapter = self._adapters.get(name)
            if adapter is None or adapter.retired:
                raise AdapterRequestError(404, "NotFoundError", f"The lora adapter '{name}' cannot be found.",
                                          "lora_name")
            lineage = next((lin for lin, target in self._aliases.items() if target == name), None)
            if lineage is not None:
                raise AdapterRequestError(409, "Conflict", f"{name!r} is what lineage {lineage!r} serves now; "
                                          "roll the lineage back or forward instead", "lora_name")
            adapter.retired = True
            adapter.named = False
        with self._sync_lock:
            self._unload_retired()

    def _check_name_free(self, name: str) -> None:
        with self._state_lock:
            existing = self._adapters.get(name)
            taken = name == self.base_model_id or name in self._aliases or name in self._declared
        if taken or (existing is not None and not existing.retired):
            raise AdapterRequestError(400, "InvalidUserInput", f"The lora adapter '{name}' has already been "
                                      "loaded. If you want to load the adapter in place, set 'load_inplace' "
                                      "to True.", "lora_name")
        if existing is not None:
            raise AdapterRequestError(409, "Conflict", f"{name!r} is still finishing requests after its unload; "
                                      "retry in a moment", "lora_name")


def _names_a_version(name: str) -> bool:
    try:
        AdapterRef.parse(name)
    except StoreError:
        return False
    return True


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
