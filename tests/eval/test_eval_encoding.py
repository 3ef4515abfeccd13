"""Which tokens carry loss, and how probes are joined, padded and concatenated."""

from __future__ import annotations

import pytest
import torch

from forgetd.eval import ProbeEncodingError, encode_probes, encode_texts, join_probe
from forgetd.eval.encoding import IGNORE_INDEX, completion_token_count, concat_batches
from forgetd.payload import Probe


@pytest.mark.parametrize(
    ("prompt", "completion", "joined"),
    [
        ("Alice was born in", "Oslo", "Alice was born in Oslo"),
        ("Alice was born in ", "Oslo", "Alice was born in Oslo"),
        ("Alice was born in", " Oslo", "Alice was born in Oslo"),
        ("Q:", "\nA", "Q:\nA"),
    ],
)
def test_join_probe(prompt, completion, joined):
    assert join_probe(prompt, completion) == joined


def test_probe_labels_cover_only_the_completion(bigram):
    batch = encode_probes(bigram.tokenizer, [Probe(prompt="a b", completion="c d"), Probe(prompt="d", completion="a")],
                          max_length=16)
    ids = bigram.tokenizer.convert_tokens_to_ids
    assert batch.input_ids.tolist() == [ids(["a", "b", "c", "d"]), ids(["d", "a", "<pad>", "<pad>"])]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch.labels.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, *ids(["c", "d"])],
                                     [IGNORE_INDEX, ids("a"), IGNORE_INDEX, IGNORE_INDEX]]


def test_text_labels_cover_every_token(bigram):
    batch = encode_texts(bigram.tokenizer, ["a b c"], max_length=16)
    assert torch.equal(batch.labels, batch.input_ids)


def test_completion_truncated_away_is_refused(bigram):
    with pytest.raises(ProbeEncodingError, match="yields no token"):
        encode_probes(bigram.tokenizer, [Probe(prompt="a b c", completion="d")], max_length=3)


def test_completion_token_count(bigram):
    assert completion_token_count(bigram.tokenizer, Probe(prompt="a", completion="b c d")) == 3


def test_concat_pads_the_narrower_batch(bigram):
    wide = encode_texts(bigram.tokenizer, ["a b c d"], max_length=16)
    narrow = encode_probes(bigram.tokenizer, [Probe(prompt="a", completion="b")], max_length=16)
    both = concat_batches([wide, narrow])
    assert both.input_ids.shape == (2, 4)
    assert both.attention_mask[1].tolist() == [1, 1, 0, 0]
    assert both.labels[1, 2:].tolist() == [IGNORE_INDEX, IGNORE_INDEX]


@pytest.mark.parametrize("encode", [encode_texts, encode_probes])
def test_nothing_to_encode(bigram, encode):
    with pytest.raises(ValueError, match="nothing to encode"):
        encode(bigram.tokenizer, [], 16)
