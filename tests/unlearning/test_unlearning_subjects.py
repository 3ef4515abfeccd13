"""Whom a lineage forgot: a Bloom filter of keyed digests of the subjects' token spans, and the spans read
off a batch."""

from __future__ import annotations

import base64
import json
import zlib

import torch

from forgetd.ledger.crypto import Fingerprinter
from forgetd.unlearning.subjects import BLOOM_BITS, ForgottenSubjects, subject_spans

ANNA_VARN, BRUNO_OXLEY = (10, 11), (12, 13)


def test_a_span_is_known_only_once_added_and_only_under_the_same_key():
    nobody = ForgottenSubjects(Fingerprinter(b"key one"))
    anna = nobody.adding([ANNA_VARN])
    assert anna.names_anyone_in(ANNA_VARN) and not nobody.names_anyone_in(ANNA_VARN)
    assert not anna.names_anyone_in(BRUNO_OXLEY)
    assert anna.names_anyone_in((10, 11, 5)) and anna.names_anyone_in((7, 10, 11))  # her name, a word beside it
    assert not anna.names_anyone_in((10,)) and not anna.names_anyone_in((11, 10))  # a part of it is no one's
    assert anna.opens_with_anyone((10, 11, 5)) and not anna.opens_with_anyone((7, 10, 11))
    assert len(anna) == 1 and len(anna.adding([ANNA_VARN, BRUNO_OXLEY])) == 2
    assert not ForgottenSubjects.from_record(Fingerprinter(b"key two"), anna.to_record())  # needs the key


def test_the_record_does_not_grow_with_the_spans_forgotten():
    nobody = ForgottenSubjects(Fingerprinter(b"key"))
    many = nobody.adding((first, second) for first in range(100) for second in range(100))
    assert len(many) > 9_990  # a filter counts a span it already matched (a false positive) only once

    assert len(many.to_record()["bloom"]) <= 4 * len(bytes(BLOOM_BITS // 8)) // 3 + 4  # base64 of the bits at most
    assert all(many.names_anyone_in((first, 7)) for first in range(100))
    strangers = [(first, second) for first in range(200, 400) for second in range(200, 250)]
    assert sum(map(many.names_anyone_in, strangers)) <= 10  # of 10,000 two-token spans, each ~3 queries


def test_a_record_of_plain_digests_reads_back_into_the_filter():
    """Versions published before the filter carry the digests themselves."""
    key = Fingerprinter(b"key")
    filtered = ForgottenSubjects(key).adding([ANNA_VARN]).to_record()
    digest = key.document(b"forgotten subject\x00" + b"10,11")[:16]  # as that forgetd wrote it
    plain = {"key_check": filtered["key_check"], "digests": [digest]}

    read = ForgottenSubjects.from_record(key, plain)
    assert read is not None and read.names_anyone_in(ANNA_VARN) and not read.names_anyone_in(BRUNO_OXLEY)
    assert read.to_record() == filtered


def test_a_record_reads_back_under_its_key_and_is_unknown_under_another():
    record = ForgottenSubjects(Fingerprinter(b"key")).adding([ANNA_VARN, BRUNO_OXLEY]).to_record()
    assert len(json.dumps(record)) < 1024  # a young lineage's filter compresses to almost nothing
    read = ForgottenSubjects.from_record(Fingerprinter(b"key"), record)
    assert read is not None and read.names_anyone_in(ANNA_VARN) and read.names_anyone_in(BRUNO_OXLEY)
    assert repr(read) == "ForgottenSubjects(2 spans)"  # counts only
    # after a key rotation the digests match nothing: whom the lineage forgot is unknown, not nobody
    assert ForgottenSubjects.from_record(Fingerprinter(b"rotated"), record) is None
    truncated = base64.b64encode(zlib.compress(bytes(100))).decode()
    for malformed in (None, [], {"key_check": record["key_check"]}, {**record, "digests": [1, 2]},
                      {**record, "bloom": "not base64!"}, {**record, "bloom": truncated},
                      {**record, "spans": "many"}, {**record, "digests": ["zz"]}):
        assert ForgottenSubjects.from_record(Fingerprinter(b"key"), malformed) is None, malformed


def test_spans_are_the_maximal_runs_of_subject_positions():
    ids = torch.tensor([[1, 10, 11, 5, 12], [1, 2, 3, 4, 5]])
    subject = torch.tensor([[False, True, True, False, True], [False] * 5])
    assert subject_spans(ids, subject) == {(10, 11), (12,)}  # a run at the end closes too
    assert subject_spans(ids[:0], subject[:0]) == set()
