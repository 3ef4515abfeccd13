"""Durable filesystem primitives: fsync'd writes, atomic replacement, hashing, an inter-process lock.

A publish must leave either no new version or a complete one whatever the moment of a crash, which
rests on three POSIX facts used here: data is durable only after ``fsync``, a directory entry (new
file, rename) only after an ``fsync`` of its directory, and ``rename``/``replace`` within one
filesystem is atomic.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"  # names a reader must ignore and the next writer may delete
_CHUNK = 1 << 20
_FILE_MODE = 0o644
READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (new files, renames) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` if missing, durably: a lineage directory lost in a crash would orphan its files."""
    try:
        path.mkdir()
    except FileExistsError:
        return
    fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def copy_and_hash(src: Path, dst: Path) -> str:
    """Copy ``src`` to the new file ``dst`` (never overwriting), fsync it, return the hex sha256.

    Hashing the bytes as they are written, rather than re-reading ``src``, ties the manifest's hash to
    exactly what landed in the store even if ``src`` changes meanwhile.
    """
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
        digest = hash_copy(fin, fout)
        fout.flush()
        os.fsync(fout.fileno())
    return digest


def hash_copy(fin: BinaryIO, fout: BinaryIO) -> str:
    """Stream ``fin`` into ``fout`` in chunks, returning the hex sha256 of exactly the bytes written."""
    digest = hashlib.sha256()
    while chunk := fin.read(_CHUNK):
        digest.update(chunk)
        fout.write(chunk)
    return digest.hexdigest()


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` (never overwriting) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def replace_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never a mix."""
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}-{uuid.uuid4().hex}")
    try:
        write_new_file(temp, data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_temp_entries(directory: Path) -> None:
    """Delete what crashed writers left in ``directory``; call only while holding its writer lock."""
    for entry in directory.iterdir():
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def make_read_only(directory: Path) -> None:
    """Drop write permission on ``directory`` and its files: a published version must never change.

    Call after the directory is renamed into place, since renaming a directory needs write permission
    on it (to update its ``..`` entry).
    """
    for entry in directory.iterdir():
        if stat.S_ISREG(entry.lstat().st_mode):
            entry.chmod(READ_ONLY_FILE)
    directory.chmod(READ_ONLY_DIR)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block.

    ``flock`` locks belong to the open file description, so two processes (or two opens in one
    process) exclude each other, and the kernel releases the lock if the holder dies.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
