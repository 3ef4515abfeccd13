"""``ObjectStorage``: a store in an S3-compatible bucket, through fsspec's S3 driver (s3fs).

Layout under ``s3://<bucket>/<prefix>/``::

    <lineage>/versions/<000001>/<PEFT files>   written first, plain PUTs
    <lineage>/versions/<000001>/manifest.json  written last, create-only (If-None-Match: *)
    <lineage>/claims/<000001>                  create-only: the one writer allowed to build that version
    <lineage>/CURRENT                          {"version", "fence", "write"}: replaced If-Match its ETag
    <lineage>/history.jsonl                    appended by a conditional rewrite (If-Match its ETag)

S3 has neither rename nor locks; what stands in for them:

* **No half-visible version.** A version exists for readers only once its manifest does, and the
  manifest is written after every file. A writer that dies midway leaves files without a manifest:
  invisible, and never reused, because its version number stays claimed.
* **No version number built twice.** A writer claims number N with a create-only object before
  writing anything under ``versions/N/``; a second claimant of N gets a precondition failure and
  moves on to N+1. The manifest's own create-only write backs this up.
* **No pointer moved twice from one state.** The pointer and the fence share one object, replaced
  only If-Match the ETag its writer read (each write carries a fresh ``write`` nonce, so equal
  contents never share an ETag). Two writers that read the same state cannot both replace it: the
  loser is admitted again against the winner's state, so a stale fencing token or a moved parent is
  refused exactly as on a local store. A writer raises the fence with a conditional write before it
  builds its version, so from then on every older writer's pointer move fails.
* **Readers verify.** :meth:`ObjectStorage.version_dir` downloads a version into a local cache,
  re-hashes every file against the manifest and only then renames it into place; a verified copy is
  re-hashed (cheap, local) and reused, a damaged one dropped and fetched again.

Limits:

* A writer that loses the pointer race after writing its manifest leaves a complete version that is
  never current (as a local publish that fails after its rename does): it is listed by ``versions``.
* The history is rewritten whole on each event, with If-Match: it stays consistent, but a pointer move
  whose writer dies before its event is not recorded (a local store has the same gap), and events of
  racing writers are ordered by when they were recorded, not when their pointer moved.
* Conditional writes need a store that honours ``If-None-Match: *`` and ``If-Match`` on PutObject:
  AWS S3 (since August and November 2024), and others that implement them. On one that ignores them
  two writers could both win; check your S3-compatible server before relying on this.
* A PUT whose answer is lost is retried by s3fs and then fails its own precondition; the writer
  recognises its own bytes (every object it writes holds a nonce or a timestamp) and goes on. Two
  writers writing byte-identical objects would be taken for one: the nonces make that impossible.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from adapters_store.errors import IntegrityError, InvalidNameError, StoreError, VersionNotFoundError
from adapters_store.fsio import TEMP_PREFIX, hash_copy
from adapters_store.layout import MANIFEST_FILE
from adapters_store.manifest import Manifest
from adapters_store.names import (
    LINEAGE_PATTERN,
    parse_version_dirname,
    validate_file_name,
    version_dirname,
)
from adapters_store.storage import (
    MAX_RACES,
    LineageState,
    Seal,
    StateConflict,
    Verify,
    fence_value,
    parse_json,
    pointer_value,
)

_STATE = "CURRENT"
_HISTORY = "history.jsonl"
# What S3 answers when a conditional write loses: 412, or 409 when two conditional writes overlap.
_LOST_RACE_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class ObjectStorage:
    """Lineages under ``s3://bucket/prefix``; verified copies of versions under ``cache_dir``.

    ``storage_options`` go to ``s3fs.S3FileSystem`` (``endpoint_url`` for an S3-compatible server).
    Credentials come from botocore's usual chain (``AWS_ACCESS_KEY_ID``... environment variables, a
    profile, an instance role) and are never part of :attr:`location`.
    """

    def __init__(self, url: str, cache_dir: Path, **storage_options: Any) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise StoreError(f"not an s3://bucket[/prefix] URL: {url!r}")
        import fsspec  # imported here: a local store must not pay for aiobotocore's import

        # fsspec shares one filesystem (one HTTP session) between stores with equal options; listings are
        # never cached, since other writers change the bucket under us.
        self._fs = fsspec.filesystem("s3", use_listings_cache=False, **storage_options)
        self._bucket = parts.netloc
        self._base = f"{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        self._cache = Path(cache_dir) / self._base
        self._cache.mkdir(parents=True, exist_ok=True)

    @property
    def location(self) -> str:
        return f"s3://{self._base}"

    def lineage_candidates(self) -> list[str]:
        try:
            entries = self._fs.ls(self._base, detail=False)
        except FileNotFoundError:
            # An empty prefix is a new store; a missing bucket is a misconfiguration to say out loud.
            if not self._fs.exists(self._bucket):
                raise StoreError(f"bucket {self._bucket!r} does not exist") from None
            return []
        names = (entry.rsplit("/", 1)[-1] for entry in entries)
        return [name for name in names if LINEAGE_PATTERN.fullmatch(name)]

    def version_numbers(self, lineage: str) -> list[int]:
        return sorted(v for v, name in self._entries(self._path(lineage, "versions")) if name == MANIFEST_FILE)

    def read_manifest(self, lineage: str, version: int) -> bytes:
        found = self._get(self._version_path(lineage, version, MANIFEST_FILE))
        if found is None:
            raise VersionNotFoundError(lineage, version)
        return found[0]

    def read_state(self, lineage: str) -> tuple[LineageState, object]:
        found = self._get(self._path(lineage, _STATE))
        if found is None:
            return LineageState(), None
        data, etag = found
        content = parse_json(lineage, _STATE, data)
        if not isinstance(content, dict):
            raise IntegrityError(lineage, None, _STATE, f"holds {content!r}, not an object")
        current = None if content.get("version") is None else pointer_value(lineage, _STATE, content)
        return LineageState(current, fence_value(lineage, _STATE, content.get("fence"))), etag

    def write_state(self, lineage: str, state: LineageState, tag: object) -> object:
        content = {"version": state.current, "fence": state.fence, "write": uuid.uuid4().hex}
        return self._put_if(self._path(lineage, _STATE), (json.dumps(content) + "\n").encode(), tag)

    def writer_lock(self, lineage: str) -> AbstractContextManager[None]:
        return nullcontext()  # no lock on S3: the conditional writes alone keep writers apart

    def new_version(self, lineage: str) -> int:
        claims = [v for v, _ in self._entries(self._path(lineage, "claims"))]
        highest = max(claims + self.version_numbers(lineage), default=0)
        version = highest + 1
        while True:
            try:
                self._put_if(self._path(lineage, "claims", version_dirname(version)), uuid.uuid4().bytes, None)
                return version
            except StateConflict:
                version += 1  # another writer claimed it first

    def install_version(self, lineage: str, version: int, sources: list[Path], seal: Seal) -> Manifest:
        files = {}
        for src in sources:
            with src.open("rb") as fin, self._fs.open(self._version_path(lineage, version, src.name), "wb") as fout:
                files[src.name] = hash_copy(fin, fout)
        manifest = seal(files)
        try:
            self._put_if(self._version_path(lineage, version, MANIFEST_FILE), manifest.to_bytes(), None)
        except StateConflict as e:
            raise StoreError(f"lineage {lineage!r} version {version} already has a manifest") from e
        return manifest

    def append_event(self, lineage: str, line: bytes) -> None:
        path = self._path(lineage, _HISTORY)
        for _ in range(MAX_RACES):
            data, etag = self._get(path) or (b"", None)
            if line in data:
                return  # a lost race on a try of ours that had landed: the line is timestamped, so it is ours
            try:
                self._put_if(path, data + line, etag)  # a PUT is whole: no torn line to cut off here
            except StateConflict:
                continue
            return
        raise StoreError(f"lineage {lineage!r}: lost {MAX_RACES} races appending to its history")

    def read_history(self, lineage: str) -> bytes:
        found = self._get(self._path(lineage, _HISTORY))
        return b"" if found is None else found[0]

    def version_dir(self, lineage: str, version: int, verify: Verify) -> Path:
        final = self._cache / lineage / version_dirname(version)
        if final.is_dir():
            try:
                verify(final)
                return final
            except IntegrityError:
                shutil.rmtree(final)  # a damaged local copy: fetch the version again
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=final.parent))
        try:
            self._download(lineage, version, staging)
            verify(staging)
            _rename_into_place(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final

    # -- objects ----------------------------------------------------------------------------------

    def _path(self, lineage: str, *parts: str) -> str:
        return "/".join((self._base, lineage, *parts))

    def _version_path(self, lineage: str, version: int, name: str) -> str:
        return self._path(lineage, "versions", version_dirname(version), name)

    def _entries(self, directory: str) -> list[tuple[int, str]]:
        """(version, rest of the path) of every object under ``directory``/<000001>..."""
        found = []
        for path in self._fs.find(directory):
            number, _, rest = path[len(directory) + 1 :].partition("/")
            version = parse_version_dirname(number)
            if version is not None:
                found.append((version, rest))
        return found

    def _download(self, lineage: str, version: int, target: Path) -> None:
        directory = self._path(lineage, "versions", version_dirname(version))
        for path in self._fs.find(directory):
            name = path[len(directory) + 1 :]
            try:
                if name != MANIFEST_FILE:
                    validate_file_name(name)
            except InvalidNameError as e:
                raise IntegrityError(lineage, version, name, "is not a file the store writes") from e
            self._fs.get_file(path, str(target / name))

    def _get(self, path: str) -> tuple[bytes, str] | None:
        """An object's bytes and the ETag of exactly those bytes (one GET); None if it does not exist."""
        from fsspec.asyn import sync

        bucket, key, _ = self._fs.split_path(path)
        try:
            return sync(self._fs.loop, self._get_async, bucket, key)
        except FileNotFoundError:
            return None

    async def _get_async(self, bucket: str, key: str) -> tuple[bytes, str]:
        response = await self._fs._call_s3("get_object", Bucket=bucket, Key=key)
        try:
            data = await response["Body"].read()
        finally:
            response["Body"].close()
        return data, response["ETag"]

    def _put_if(self, path: str, data: bytes, etag: object) -> str:
        """PUT ``data`` only if the object still has ``etag`` (None: only if it does not exist yet);
        StateConflict when another writer changed it first. Returns the new ETag."""
        bucket, key, _ = self._fs.split_path(path)
        condition = {"IfNoneMatch": "*"} if etag is None else {"IfMatch": etag}
        try:
            response = self._fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        except OSError as e:
            if not _lost_race(e, expected_existing=etag is not None):
                raise
            found = self._get(path)
            if found is not None and found[0] == data:
                # Our own earlier try landed and its answer was lost (s3fs retries): every write here
                # carries something unique (a nonce, a timestamp), so equal bytes are ours.
                return found[1]
            raise StateConflict(f"{path}: changed by another writer") from e
        return str(response["ETag"])


def _lost_race(error: OSError, *, expected_existing: bool) -> bool:
    """Whether s3fs's translation of a conditional PUT's failure means another writer got there first."""
    if expected_existing and isinstance(error, FileNotFoundError):
        return True  # If-Match on an object deleted meanwhile
    response = getattr(error.__cause__, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code") in _LOST_RACE_CODES


def _rename_into_place(staging: Path, final: Path) -> None:
    try:
        os.rename(staging, final)
    except OSError:
        if not final.is_dir():
            raise
        shutil.rmtree(staging)  # a concurrent reader installed its own verified copy first
