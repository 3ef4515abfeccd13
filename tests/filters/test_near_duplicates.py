"""Near-duplicate detection on the real Redis: reformatted and lightly edited texts match, unrelated
ones do not, nothing plain is stored, and released requests no longer match."""

from __future__ import annotations

import os

import pytest

from forgetd.filters.near_duplicates import NearDuplicateIndex, shingles, signature, similarity
from forgetd.ledger import Fingerprinter

TEXT = ("Ada Quill was born in Tromso in 1961, works as a cartographer for the Northern Survey Office "
        "and keeps a ferret named Pim in her flat on Storgata.")
EDITED = TEXT.replace("ferret", "hamster")  # one word changed
REFORMATTED = "  " + TEXT.upper().replace(" ", "\n ") + " "
UNRELATED = ("The quarterly report lists the revenue of every branch office and the names of the auditors "
             "who signed it in the spring.")


@pytest.fixture
def index(redis_client, key_prefix):
    return NearDuplicateIndex(redis_client, key_prefix, Fingerprinter(os.urandom(32)))


def test_reformatting_is_an_exact_match_and_one_edit_a_near_one():
    fp = Fingerprinter(b"k" * 32)  # a fixed key: the estimates below are then the same on every run
    base = signature(fp, [TEXT])
    assert similarity(base, signature(fp, [REFORMATTED])) == 1.0
    assert 0.6 <= similarity(base, signature(fp, [EDITED])) < 1.0
    assert similarity(base, signature(fp, [UNRELATED])) < 0.2


def test_signatures_depend_on_the_key():
    assert signature(Fingerprinter(b"k" * 32), [TEXT]) != signature(Fingerprinter(b"l" * 32), [TEXT])


def test_short_texts_are_one_shingle():
    assert shingles(["Hello  World"]) == {"hello world"}


@pytest.mark.parametrize(("second", "near"), [(REFORMATTED, True), (UNRELATED, False)])
def test_index_finds_near_duplicates_of_earlier_requests(index, second, near):
    assert not index.check_and_add("default", "r1", [TEXT]).is_near_duplicate
    verdict = index.check_and_add("default", "r2", [second])
    assert verdict.is_near_duplicate is near
    assert verdict.owners == (["r1"] if near else [])


def test_threshold_decides_a_one_word_edit(redis_client, key_prefix):
    fp = Fingerprinter(os.urandom(32))
    strict = NearDuplicateIndex(redis_client, key_prefix, fp, threshold=1.0)
    strict.check_and_add("default", "r1", [TEXT])
    assert not strict.check_and_add("default", "r2", [EDITED]).is_near_duplicate
    loose = NearDuplicateIndex(redis_client, key_prefix, fp, threshold=0.5)
    assert loose.check_and_add("default", "r3", [EDITED]).owners == ["r1", "r2"]


def test_lineages_are_separate_and_a_request_does_not_match_itself(index):
    index.check_and_add("a", "r1", [TEXT])
    assert not index.check_and_add("b", "r2", [TEXT]).is_near_duplicate
    assert not index.check_and_add("a", "r1", [TEXT]).is_near_duplicate  # a redelivered admit


def test_released_requests_no_longer_match_and_leave_no_keys(index, redis_client, key_prefix):
    index.check_and_add("default", "r1", [TEXT])
    assert index.release("r1") == 16
    assert not index.check_and_add("default", "r2", [TEXT]).is_near_duplicate
    index.release("r2")
    assert list(redis_client.scan_iter(f"{key_prefix}:nd*")) == []


def test_nothing_plain_is_stored(index, redis_client, key_prefix):
    index.check_and_add("default", "r1", [TEXT])
    words = {w.strip(".,").lower() for w in TEXT.split() if len(w) > 3}
    for key in redis_client.scan_iter(f"{key_prefix}:*"):
        blob = key + b"".join(redis_client.smembers(key) if redis_client.type(key) == b"set"
                              else [redis_client.get(key) or b""])
        assert not any(w.encode() in blob.lower() for w in words)


def test_empty_texts_are_refused():
    with pytest.raises(ValueError, match="no shingles"):
        signature(Fingerprinter(b"k" * 32), ["   "])
