"""How a loaded version turns into the module that generates: LoRA updates on one base, or merged copies.

Both backends serialise generation on one lock: a CPU (or one GPU) gains nothing from two decodes at
once, and in adapter mode the selected version is state shared by the layers. (peft's mixed-batch
``adapter_names=`` would not lift that either: it registers forward pre-hooks on the shared LoRA layers
for the duration of a call, so two concurrent calls would each see the other's hooks.) A request is
pinned to its version by the engine's lease, not by this lock.

- :class:`AdapterBackend` (``FORGETD_SERVE_MODE=adapter``): the base once, each version a LoRA update on
  it (a few MB) applied by forgetd's lean serving layer (``lora.py``); loading reads the files without
  the lock, then takes it for the few dict inserts that make the version servable.
- :class:`MergedBackend` (``merged``): each version a module whose LoRA-targeted weights are merged
  (``W + B A * scale``), every other tensor shared with the base. The merged copy is built off to the side
  without the lock, then published by swapping one dict entry, so no request ever sees a half-merged
  model, and requests already running keep the module they started on. Memory: the targeted weights once
  more per loaded version (current and previous per lineage), plus one such copy while a swap builds.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from peft import PeftModel
from torch import nn

from forgetd.serving.domain import ServeMode
from forgetd.serving.lora import Selection, ServingLoraLinear, check_shapes, lora_layer, read_lora


class Backend(Protocol):
    def add(self, name: str, path: Path) -> None:
        """Make ``name`` servable from the PEFT folder ``path``; complete before it returns."""

    def remove(self, name: str) -> None:
        """Free ``name``; the engine calls it only once no request holds the version."""

    def generating(self, name: str | None) -> Any:
        """Context manager: the module answering as ``name`` (None: the base), generation lock held."""


class AdapterBackend:
    """The base with a :class:`~forgetd.serving.lora.ServingLoraLinear` on each projection an adapter
    targets; the version is chosen per generate by the shared selection, under the lock."""

    def __init__(self, base: nn.Module) -> None:
        self._base = base
        self._selection = Selection()
        self._layers: dict[str, ServingLoraLinear] = {}
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def add(self, name: str, path: Path) -> None:
        updates = read_lora(path, self._base)  # files read and converted while requests keep running
        with self._lock:  # the layers change (a projection wrapped on first use): no forward meanwhile
            layers = {module: self._layer(module) for module in updates}
            for module, update in updates.items():
                check_shapes(layers[module], module, update)
            for module, update in updates.items():
                layers[module].updates[name] = update
            self._names.add(name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._names.discard(name)
            for layer in self._layers.values():
                layer.updates.pop(name, None)

    @contextmanager
    def generating(self, name: str | None) -> Iterator[Any]:
        with self._lock:
            if name is not None and name not in self._names:
                # A layer without an update for the selected name acts as the base (a version may target
                # fewer projections than another), so an unknown name must stop here, not answer as the base.
                raise KeyError(f"adapter {name!r} is not loaded")
            self._selection.name = name
            try:
                yield self._base
            finally:
                self._selection.name = None

    def _layer(self, module: str) -> ServingLoraLinear:
        if module not in self._layers:
            self._layers[module] = lora_layer(self._base, module, self._selection)
        return self._layers[module]


class MergedBackend:
    """One module per version with the LoRA update merged into its own copy of the targeted weights."""

    def __init__(self, base: nn.Module) -> None:
        self._base = base
        self._merged: dict[str, nn.Module] = {}
        self._lock = threading.Lock()

    def add(self, name: str, path: Path) -> None:
        merged = merged_copy(self._base, path)  # the slow part, while requests keep running
        with self._lock:
            self._merged[name] = merged

    def remove(self, name: str) -> None:
        with self._lock:
            del self._merged[name]

    @contextmanager
    def generating(self, name: str | None) -> Iterator[Any]:
        with self._lock:
            yield self._base if name is None else self._merged[name]


def make_backend(mode: ServeMode, base: nn.Module) -> Backend:
    return MergedBackend(base) if mode == "merged" else AdapterBackend(base)


def merged_copy(base: nn.Module, adapter_dir: Path) -> nn.Module:
    """``base`` with the adapter in ``adapter_dir`` merged, sharing every tensor the adapter leaves alone.

    Only the modules the adapter's weights name are copied (``deepcopy`` with the other tensors pre-seeded
    in its memo), so the copy costs the targeted weights, not the model. peft merges them (``safe_merge``
    refuses a result with NaN or inf) and unloads its layers; ``base`` is never written.
    """
    targets = read_lora(adapter_dir, base).keys()
    shared = {
        id(tensor): tensor
        for name, tensor in [*base.named_parameters(), *base.named_buffers()]
        if name.rsplit(".", 1)[0] not in targets
    }
    model = copy.deepcopy(base, memo=shared)
    merged: nn.Module = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload(safe_merge=True)
    merged.eval()
    return merged
