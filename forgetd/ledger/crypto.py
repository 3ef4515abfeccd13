"""Envelope encryption of request payloads, with crypto-shredding.

Each request gets a fresh 256-bit data key; the payload is sealed with AES-GCM under that key, and the
data key is itself sealed (wrapped) under the deployment's master key. Both seals bind the request id
as associated data, so a ciphertext moved onto another record does not open. Destroying the wrapped
data key makes the payload unreadable for good, even from backups of the ciphertext.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import unicodedata
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
    """Seals and opens request payloads under per-request data keys wrapped by ``master_key``."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError(f"master key must be 32 bytes, got {len(master_key)}")
        self._master_key = master_key

    def seal(self, request_id: str, plaintext: bytes) -> SealedPayload:
        aad = request_id.encode()
        data_key = AESGCM.generate_key(bit_length=256)
        return SealedPayload(
            wrapped_key=_seal(self._master_key, data_key, aad),
            ciphertext=_seal(data_key, plaintext, aad),
        )

    def open(self, request_id: str, sealed: SealedPayload) -> bytes:
        aad = request_id.encode()
        try:
            data_key = _open(self._master_key, sealed.wrapped_key, aad)
            return _open(data_key, sealed.ciphertext, aad)
        except (InvalidTag, ValueError) as e:
            raise PayloadUnavailableError(request_id, "authentication failed") from e


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
