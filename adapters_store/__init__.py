"""Immutable, versioned LoRA adapter lineages in a local directory or an S3-compatible bucket.

Independent of forgetd's pipeline, HTTP API and settings, so that a serving process can use it alone.
"""

from adapters_store.compatibility import check_vllm_compatibility
from adapters_store.errors import (
    IntegrityError,
    InvalidNameError,
    ManifestError,
    ParentMismatchError,
    StaleFencingTokenError,
    StoreError,
    VersionNotFoundError,
)
from adapters_store.manifest import Manifest
from adapters_store.ref import AdapterRef
from adapters_store.store import AdapterStore, open_store

__all__ = [
    "AdapterRef",
    "AdapterStore",
    "IntegrityError",
    "InvalidNameError",
    "Manifest",
    "ManifestError",
    "ParentMismatchError",
    "StaleFencingTokenError",
    "StoreError",
    "VersionNotFoundError",
    "check_vllm_compatibility",
    "open_store",
]
