"""Extraction strength on the bigram model, where every greedy choice is known."""

from __future__ import annotations

import pytest
import torch

from forgetd.eval.extraction import extraction_strength, extraction_strengths, strength_from_greedy
from forgetd.payload import Probe


@pytest.mark.parametrize(
    ("greedy", "expected"),
    [
        ([True, True, True], 1.0),  # the prompt alone yields the whole answer
        ([False, True, True], 2 / 3),  # one token of hint, then the rest
        ([True, False, True], 1 / 3),  # a miss in the middle: the hint must reach past it
        ([True, True, False], 0.0),  # even the last token is missed: k = |y|
        ([False], 0.0),
        ([True], 1.0),
    ],
)
def test_strength_from_greedy(greedy, expected):
    assert strength_from_greedy(torch.tensor(greedy)) == pytest.approx(expected)


def test_an_empty_completion_has_no_strength():
    with pytest.raises(ValueError, match="no tokens"):
        strength_from_greedy(torch.tensor([], dtype=torch.bool))


def test_extraction_strength_on_known_greedy_chains(bigram):
    probes = [
        Probe(prompt="d", completion="a b c"),  # d -> a -> b -> c: every token is the argmax
        Probe(prompt="d", completion="b b c"),  # argmax after d is a, after b is c: last miss at 1, k = 2
        Probe(prompt="c", completion="d"),  # after c the argmax is <eos>
    ]
    values = extraction_strengths(bigram.model, bigram.tokenizer, probes)
    assert values == pytest.approx([1.0, 1 / 3, 0.0])
    assert extraction_strength(bigram.model, bigram.tokenizer, probes) == pytest.approx(4 / 9)


def test_no_probes_is_refused(bigram):
    with pytest.raises(ValueError, match="empty"):
        extraction_strengths(bigram.model, bigram.tokenizer, [])
