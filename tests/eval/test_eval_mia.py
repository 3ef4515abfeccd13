"""Min-K% Prob scores and the membership AUC, on the bigram model's known token probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from forgetd.eval.mia import mia_auc, min_k_evidence, min_k_of, min_k_scores, roc_auc


@pytest.mark.parametrize(
    ("members", "nonmembers", "expected"),
    [
        ([3.0, 2.0], [1.0, 0.0], 1.0),
        ([0.0], [1.0], 0.0),
        ([1.0], [1.0], 0.5),  # ties count one half
        ([1.0, 3.0], [2.0], 0.5),
        ([1.0, 2.0, 3.0], [2.0, 0.0], (1 + 1.5 + 2) / 6),  # wins per member: 1, 1 + a tie, 2
    ],
)
def test_roc_auc(members, nonmembers, expected):
    assert roc_auc(members, nonmembers) == pytest.approx(expected)


def test_roc_auc_needs_both_sets():
    with pytest.raises(ValueError, match="at least one member"):
        roc_auc([], [1.0])


@pytest.mark.parametrize(
    ("nll", "k", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.2, -5.0),  # one token: the least likely
        ([1.0, 2.0, 3.0, 4.0, 5.0], 0.4, -4.5),  # two tokens
        ([1.0, 2.0], 0.2, -2.0),  # int(0.4) = 0 tokens: at least one
        ([1.0, 2.0, 3.0], 1.0, -2.0),  # k = 100 %: the mean log-probability
    ],
)
def test_min_k_of(nll, k, expected):
    assert min_k_of(torch.tensor(nll), k) == pytest.approx(expected)


def test_min_k_scores_read_the_least_likely_tokens(bigram):
    p = bigram.prob
    # "a b c": b|a (0.7) and c|b (0.6) are scored; 20 % of 2 tokens is one token, the least likely.
    scores = min_k_scores(bigram.model, bigram.tokenizer, ["a b c", "a c"])
    assert scores == pytest.approx([math.log(p("b", "c")), math.log(p("a", "c"))], rel=1e-4)


def test_mia_auc_separates_likely_from_unlikely_texts(bigram):
    members, nonmembers = ["a b c", "d a b"], ["a c", "b a"]
    assert mia_auc(bigram.model, bigram.tokenizer, members, nonmembers) == 1.0
    assert mia_auc(bigram.model, bigram.tokenizer, nonmembers, members) == 0.0


@pytest.mark.parametrize("k", [0.0, -0.1, 1.5])
def test_k_out_of_range_is_refused(bigram, k):
    with pytest.raises(ValueError, match=f"got {k}"):
        min_k_scores(bigram.model, bigram.tokenizer, ["a b"], k=k)


def test_the_evidence_is_split_into_the_subjects_name_and_the_rest(bigram):
    p, ids = bigram.prob, bigram.tokenizer.convert_tokens_to_ids
    # "a b c" scores b|a (0.7) and c|b (0.6): the name is b; the one Min-K% token is c, not part of it
    kinds = min_k_evidence(bigram.model, bigram.tokenizer, ["a b c"], [{ids("b")}])
    assert kinds.name_nll == pytest.approx(-math.log(p("a", "b")), rel=1e-4)
    assert kinds.other_nll == pytest.approx(-math.log(p("b", "c")), rel=1e-4)
    # every name token counts, Min-K% or not; a Min-K% token of the name is not "other"
    both = min_k_evidence(bigram.model, bigram.tokenizer, ["a b c", "d a b"], [{ids("b"), ids("c")}, set()])
    assert both.name_nll == pytest.approx(-(math.log(p("a", "b")) + math.log(p("b", "c"))) / 2, rel=1e-4)
    assert both.other_nll == pytest.approx(-math.log(p("d", "a")), rel=1e-4)  # "d a b": a|d (0.4) < b|a
    # the same pass gives the texts' Min-K% scores
    assert both.scores == min_k_scores(bigram.model, bigram.tokenizer, ["a b c", "d a b"])
    assert math.isnan(min_k_evidence(bigram.model, bigram.tokenizer, ["a b c"], [set()]).name_nll)
    with pytest.raises(ValueError, match="1 name token sets for 2 texts"):
        min_k_evidence(bigram.model, bigram.tokenizer, ["a b c", "a c"], [set()])
