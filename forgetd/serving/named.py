"""Rules for adapters loaded by name through ``/v1/load_lora_adapter``: the name, and where the files are.

The endpoint must not become a loader of arbitrary files: a path is accepted only when it resolves
(symbolic links followed) to a published version directory of this engine's adapter store, and the
engine then re-checks that version's hashes before loading it. Relative paths are read from the store
root (``default/versions/000003``), absolute ones as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

from adapters_store import AdapterRef, AdapterStore, InvalidNameError, StoreError
from adapters_store.names import parse_version_dirname
from forgetd.serving.domain import AdapterRequestError

# No path separators, no "..", no whitespace or control characters: a name shows up in /v1/models, in
# logs and as a metric label's neighbour, and clients put it in URLs.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}", re.ASCII)


def validate_adapter_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise AdapterRequestError(400, "InvalidUserInput", f"invalid lora_name {name!r}: use at most 128 of "
                                  "A-Z a-z 0-9 . _ : @ + -, starting with a letter or digit, without '..'",
                                  "lora_name")
    return name


def store_version_at(store: AdapterStore, raw_path: str) -> AdapterRef:
    """The store version whose directory ``raw_path`` names; refuses anything else."""
    if "\x00" in raw_path:
        raise _bad_path("contains a NUL character")
    try:
        root = store.root.resolve()
    except StoreError as e:
        raise _bad_path("cannot name a version: this engine's adapter store is not a local directory") from e
    given = Path(raw_path)
    path = (given if given.is_absolute() else root / given).resolve()
    if not path.is_relative_to(root):
        raise _bad_path("is outside the adapter store")
    if not path.is_dir():
        # vLLM answers a path with no adapter with 404 and this wording.
        raise AdapterRequestError(404, "NotFoundError", f"No adapter found for {raw_path}", "lora_path")
    parts = path.relative_to(root).parts
    version = parse_version_dirname(parts[2]) if len(parts) == 3 and parts[1] == "versions" else None
    if version is None:
        raise _bad_path("is not a version directory (<lineage>/versions/<NNNNNN>)")
    try:
        ref = AdapterRef(parts[0], version)
    except InvalidNameError as e:
        raise _bad_path("is not a version directory (<lineage>/versions/<NNNNNN>)") from e
    if store.version_path(ref.lineage, ref.version).resolve() != path:
        raise _bad_path("is not a version directory (<lineage>/versions/<NNNNNN>)")
    return ref


def _bad_path(reason: str) -> AdapterRequestError:
    return AdapterRequestError(400, "InvalidUserInput", f"lora_path {reason}", "lora_path")
