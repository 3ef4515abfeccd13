"""Envelope encryption of request payloads, with crypto-shredding.

Each request gets a fresh 256-bit data key; the payload is sealed with AES-GCM under that key, and the
data key is itself sealed (wrapped) under the deployment's master key. Both seals bind the request id
as associated data, so a ciphertext moved onto another record does not open. Destroying the wrapped
data key makes the payload unreadable for good, even from backups of the ciphertext.

Rotating the master key re-wraps the small data keys, never the payloads: while a rotation runs, the
previous master keys still open what they wrapped (AES-GCM's tag tells which key fits).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class PayloadUnavailableError(Exception):
    """The payload cannot be opened: its key was shredded, or the record is corrupt."""

    def __init__(self, request_id: str, why: str) -> None:
        super().__init__(f"payload of request {request_id} is unavailable: {why}")
        self.request_id = request_id


@dataclass(frozen=True)
class SealedPayload:
    wrapped_key: bytes  # nonce || AES-GCM(master, data key)
    ciphertext: bytes  # nonce || AES-GCM(data key, payload)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)


class PayloadCipher:
    """Seals and opens request payloads under per-request data keys wrapped by ``master_key``;
    ``previous_keys`` only open data keys wrapped before a rotation."""

    def __init__(self, master_key: bytes, previous_keys: Sequence[bytes] = ()) -> None:
        for key in (master_key, *previous_keys):
            if len(key) != 32:
                raise ValueError(f"master keys must be 32 bytes, got {len(key)}")
        self._master_key = master_key
        self._previous_keys = tuple(previous_keys)

    def seal(self, request_id: str, plaintext: bytes) -> SealedPayload:
        aad = request_id.encode()
        data_key = AESGCM.generate_key(bit_length=256)
        return SealedPayload(
            wrapped_key=_seal(self._master_key, data_key, aad),
            ciphertext=_seal(data_key, plaintext, aad),
        )

    def open(self, request_id: str, sealed: SealedPayload) -> bytes:
        aad = request_id.encode()
        data_key, _ = self._unwrap(request_id, sealed.wrapped_key)
        try:
            return _open(data_key, sealed.ciphertext, aad)
        except (InvalidTag, ValueError) as e:
            raise PayloadUnavailableError(request_id, "authentication failed") from e

    def rewrap(self, request_id: str, wrapped_key: bytes) -> bytes | None:
        """The data key wrapped under the current master key, or ``None`` when it already is."""
        data_key, current = self._unwrap(request_id, wrapped_key)
        return None if current else _seal(self._master_key, data_key, request_id.encode())

    def _unwrap(self, request_id: str, wrapped_key: bytes) -> tuple[bytes, bool]:
        """The data key, and whether the current master key wrapped it."""
        for key in (self._master_key, *self._previous_keys):
            try:
                return _open(key, wrapped_key, request_id.encode()), key is self._master_key
            except (InvalidTag, ValueError):
                continue
        raise PayloadUnavailableError(request_id, "no master key opens its data key")


def normalise_text(text: str) -> str:
    """The form duplicates are compared in: NFKC, case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class Fingerprinter:
    """Keyed HMAC-SHA256 fingerprints: equal texts match, yet a leaked fingerprint reveals nothing
    without the key (a plain hash of a short personal fact could be brute-forced)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def text(self, text: str) -> str:
        return hmac.new(self._key, normalise_text(text).encode(), hashlib.sha256).hexdigest()

    def document(self, canonical: bytes) -> str:
        return hmac.new(self._key, canonical, hashlib.sha256).hexdigest()
