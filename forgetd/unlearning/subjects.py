"""Whom an update forgets, and whom its lineage forgot before: the subjects' token spans.

A request's subject is read off the batch itself (:func:`subject_positions`, from
:func:`forgetd.unlearning.counterfactual.subject_token_sets`). fit needs the subjects twice: to read them as
strangers in this update, and, in every later update, to tell the people the lineage forgot from everyone
else. The second is :class:`ForgottenSubjects`, which each published version carries forward.

Why a lineage must remember whom it forgot: an update holds its answers about everyone else at some
reference. The lineage's current version is the wrong one, because whatever one update lets slip becomes
the next one's reference: at batch size 1 the people not yet requested kept 0.90 of their facts after 8
updates and 0.08 after 48 (docs/benchmark.md, tenth round). The base model is the right reference for
them, but holding the base model's answers about someone already forgotten would bring that person back,
and drift cannot be told from deliberate forgetting by how far an answer moved (the same round). So the
lineage keeps whom it forgot.

What it keeps is a Bloom filter of keyed digests, never the names: HMAC-SHA256 of a span's token ids under
the deployment's key, cut to ``DIGEST_HEX`` hex digits, sets ``BLOOM_HASHES`` of ``BLOOM_BITS`` bits. The
filter's size is fixed, so a version's manifest does not grow with the requests its lineage served; a
false positive takes a person nobody asked about for someone forgotten, which only makes fit hold the
current version's answers about them (the safe side). Without the key the filter is noise; with it, one
can test whether a given name was forgotten, no more than the exact-duplicate fingerprints already allow
(:mod:`forgetd.filters.duplicates`). This is a suppression list, the record that keeps an erased person
erased; it outlives the request's verification window on purpose, as the fingerprints do.

Only whole spans are digested, so a later update must find a whole span in what it holds: inside a subject
(:meth:`ForgottenSubjects.names_anyone_in`) or opening the name the base model reads a subject's first token
as (:meth:`ForgottenSubjects.opens_with_anyone`, :func:`forgetd.unlearning.counterfactual.whole_names`).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch

from forgetd.eval.encoding import IGNORE_INDEX, EncodedBatch
from forgetd.unlearning.counterfactual import subject_token_sets

if TYPE_CHECKING:  # inputs carries a lineage's ForgottenSubjects
    from forgetd.unlearning.inputs import UnlearningData

DIGEST_HEX = 16  # 64 bits, from which the filter's bit positions are derived (Kirsch-Mitzenmacher)
# 128 KiB of bits and 7 of them per span: a false positive about 1 in 7,000 at 50,000 spans (some 15,000
# requests), 1 in 30 at 150,000. Stored zlib-compressed, so a young lineage's record is a few KiB.
BLOOM_BITS = 1 << 20
BLOOM_HASHES = 7


class Fingerprints(Protocol):
    """Keyed digests of byte strings (:class:`forgetd.ledger.crypto.Fingerprinter`)."""

    def document(self, canonical: bytes) -> str: ...


class ForgottenSubjects:
    """The keyed digests of every subject span a lineage has forgotten, up to and including one version, in
    a Bloom filter; ``len`` is how many spans were added (less any the filter already matched)."""

    def __init__(self, fingerprints: Fingerprints, bits: bytes | None = None, spans: int = 0) -> None:
        self._fingerprints = fingerprints
        self._bits = bytes(BLOOM_BITS // 8) if bits is None else bits
        if len(self._bits) * 8 != BLOOM_BITS:
            raise ValueError(f"a forgotten-subjects filter has {BLOOM_BITS} bits, not {len(self._bits) * 8}")
        self._spans = spans

    def names_anyone_in(self, span: Sequence[int]) -> bool:
        """Whether a forgotten subject's span is ``span`` or any run of tokens inside it.

        The subject slot a question is asked with is as long as the name of the request at hand, so another
        person's name comes out of it with a word after it ("Yusuf Whitlock was"); a part of a name
        ("Yusuf") is no one's: only whole spans are digested, because a single token's digest could be
        found by trying every token of the vocabulary, and the names with it."""
        return any(self.opens_with_anyone(span[start:]) for start in range(len(span)))

    def opens_with_anyone(self, span: Sequence[int]) -> bool:
        """Whether ``span`` begins with a forgotten subject's span."""
        return any(self._holds(self._digest(span[:end])) for end in range(1, len(span) + 1))

    def __len__(self) -> int:
        return self._spans

    def __repr__(self) -> str:  # counts only
        return f"ForgottenSubjects({self._spans} spans)"

    def adding(self, spans: Iterable[Sequence[int]]) -> ForgottenSubjects:
        """These spans and ``spans``, under the same key."""
        return self._adding_digests(self._digest(span) for span in spans)

    def to_record(self) -> dict[str, Any]:
        """What a manifest carries: the compressed filter, its span count, and a check of its key."""
        return {"key_check": _key_check(self._fingerprints), "spans": self._spans,
                "bloom": base64.b64encode(zlib.compress(self._bits, 9)).decode()}

    @classmethod
    def from_record(cls, fingerprints: Fingerprints, record: Any) -> ForgottenSubjects | None:
        """The set :meth:`to_record` wrote, or the plain digest list forgetd wrote before the filter; None
        when it was written under another key (the HMAC key was rotated since) or is malformed: its digests
        can no longer be matched, so whom the lineage forgot is unknown, and must not be mistaken for nobody."""
        if not isinstance(record, dict) or record.get("key_check") != _key_check(fingerprints):
            return None
        if "digests" in record:
            digests = record["digests"]
            if isinstance(digests, list) and all(isinstance(d, str) and _is_digest(d) for d in digests):
                return cls(fingerprints)._adding_digests(digests)
            return None
        try:
            bits = zlib.decompress(base64.b64decode(record["bloom"], validate=True))
            return cls(fingerprints, bits, int(record["spans"]))
        except (KeyError, TypeError, ValueError, binascii.Error, zlib.error):
            return None

    def _adding_digests(self, digests: Iterable[str]) -> ForgottenSubjects:
        bits, spans = bytearray(self._bits), self._spans
        for digest in digests:
            positions = _positions(digest)
            spans += not _all_set(bits, positions)
            for position in positions:
                bits[position >> 3] |= 1 << (position & 7)
        return ForgottenSubjects(self._fingerprints, bytes(bits), spans)

    def _holds(self, digest: str) -> bool:
        return _all_set(self._bits, _positions(digest))

    def _digest(self, span: Sequence[int]) -> str:
        return self._fingerprints.document(b"forgotten subject\x00" + ",".join(map(str, span)).encode())[:DIGEST_HEX]


def _positions(digest: str) -> list[int]:
    """The filter's bits for one digest: double hashing on its two 32-bit halves."""
    value = int(digest, 16)
    first, step = value & 0xFFFFFFFF, (value >> 32) | 1  # an odd step visits distinct bits
    return [(first + i * step) % BLOOM_BITS for i in range(BLOOM_HASHES)]


def _all_set(bits: bytes | bytearray, positions: Iterable[int]) -> bool:
    return all(bits[position >> 3] >> (position & 7) & 1 for position in positions)


def _is_digest(text: str) -> bool:
    return len(text) == DIGEST_HEX and all(c in "0123456789abcdef" for c in text)


def _key_check(fingerprints: Fingerprints) -> str:
    """A digest of a fixed string: tells whether a record was written under the same key."""
    return fingerprints.document(b"forgotten subjects key check")[:DIGEST_HEX]


def subject_positions(data: UnlearningData) -> torch.Tensor:
    """``[N, T]`` bool: the input positions of every forget row that hold its request's subject tokens."""
    forget = data.forget
    prompt = prompt_mask(forget)
    row_groups = data.forget_groups.tolist()
    prompts: dict[int, list[list[int]]] = {}
    for row in torch.nonzero(data.forget_is_probe).flatten().tolist():
        prompts.setdefault(row_groups[row], []).append(forget.input_ids[row][prompt[row]].tolist())
    retained = set(data.retain.input_ids[data.retain.attention_mask.bool()].tolist())
    order = sorted(prompts)
    subjects = dict(zip(order, subject_token_sets([prompts[g] for g in order], retained), strict=True))
    mask = torch.zeros_like(forget.input_ids, dtype=torch.bool)
    for row, group in enumerate(row_groups):
        tokens = sorted(subjects.get(group, ()))
        if tokens:
            mask[row] = torch.isin(forget.input_ids[row], torch.tensor(tokens, device=mask.device))
    return mask & forget.attention_mask.bool()


def subject_spans(input_ids: torch.Tensor, subject: torch.Tensor) -> set[tuple[int, ...]]:
    """Every maximal run of subject positions (``subject`` ``[N, T]`` bool) in ``input_ids``, as token ids."""
    spans = set()
    for ids, flags in zip(input_ids.tolist(), subject.tolist(), strict=True):
        run: list[int] = []
        for token, flag in zip([*ids, 0], [*flags, False], strict=True):  # a sentinel closes the last run
            if flag:
                run.append(token)
            elif run:
                spans.add(tuple(run))
                run = []
    return spans


def prompt_mask(batch: EncodedBatch) -> torch.Tensor:
    """``[N, T]`` bool: the real positions that carry no label (a probe's prompt)."""
    return (batch.labels == IGNORE_INDEX) & batch.attention_mask.bool()
