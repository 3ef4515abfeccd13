"""Whom a lineage forgot: keyed digests of the subjects' token spans, and the spans read off a batch."""

from __future__ import annotations

import torch

from forgetd.ledger.crypto import Fingerprinter
from forgetd.unlearning.subjects import DIGEST_HEX, ForgottenSubjects, subject_spans

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
    assert not ForgottenSubjects(Fingerprinter(b"key two"), anna.digests).names_anyone_in(ANNA_VARN)  # needs the key


def test_a_record_reads_back_under_its_key_and_is_unknown_under_another():
    record = ForgottenSubjects(Fingerprinter(b"key")).adding([ANNA_VARN, BRUNO_OXLEY]).to_record()
    assert record["digests"] == sorted(record["digests"])
    assert all(len(d) == DIGEST_HEX and int(d, 16) >= 0 for d in record["digests"])
    read = ForgottenSubjects.from_record(Fingerprinter(b"key"), record)
    assert read is not None and read.names_anyone_in(ANNA_VARN) and read.names_anyone_in(BRUNO_OXLEY)
    assert repr(read) == "ForgottenSubjects(2 digests)"  # counts only
    # after a key rotation the digests match nothing: whom the lineage forgot is unknown, not nobody
    assert ForgottenSubjects.from_record(Fingerprinter(b"rotated"), record) is None
    for malformed in (None, [], {"key_check": record["key_check"]}, {**record, "digests": [1, 2]}):
        assert ForgottenSubjects.from_record(Fingerprinter(b"key"), malformed) is None


def test_spans_are_the_maximal_runs_of_subject_positions():
    ids = torch.tensor([[1, 10, 11, 5, 12], [1, 2, 3, 4, 5]])
    subject = torch.tensor([[False, True, True, False, True], [False] * 5])
    assert subject_spans(ids, subject) == {(10, 11), (12,)}  # a run at the end closes too
    assert subject_spans(ids[:0], subject[:0]) == set()
