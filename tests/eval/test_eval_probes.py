"""Greedy completion, recall and NLL on the bigram model, where every answer is known exactly."""

from __future__ import annotations

import math

import pytest

from forgetd.eval import greedy_completion, probe_nll, probe_recall
from forgetd.eval import probes as probes_module
from forgetd.eval.probes import Recall, score_probes
from forgetd.payload import Probe


def probe(prompt: str, completion: str) -> Probe:
    return Probe(prompt=prompt, completion=completion)


def test_greedy_completion_follows_the_argmax_chain_and_stops_at_eos(bigram):
    # a -> b (0.7) -> c (0.6) -> <eos> (0.5); c stops at once; left padding must not change "b a".
    out = greedy_completion(bigram.model, bigram.tokenizer, ["a", "b a", "c", "d"], max_new_tokens=5)
    assert out == ["b c", "b c", "", "a b c"]


def test_greedy_completion_respects_max_new_tokens(bigram):
    assert greedy_completion(bigram.model, bigram.tokenizer, ["d"], max_new_tokens=2) == ["a b"]


def test_greedy_completion_with_a_margin_ends_before_the_first_undecided_token(bigram):
    # a -> b (0.7 against 0.1) -> c (0.6 against 0.2) -> <eos> (0.5 against 0.3); d -> a (0.4 against 0.3).
    prompts = ["a", "d", "b a"]
    assert greedy_completion(bigram.model, bigram.tokenizer, prompts, 5, min_margin=math.log(2)) == ["b c", "", "b c"]
    assert greedy_completion(bigram.model, bigram.tokenizer, prompts, 5, min_margin=math.log(4)) == ["b", "", "b"]
    assert greedy_completion(bigram.model, bigram.tokenizer, prompts, 5, min_margin=0.0) == \
        greedy_completion(bigram.model, bigram.tokenizer, prompts, 5)


def test_greedy_completion_rejects_a_zero_budget(bigram):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        greedy_completion(bigram.model, bigram.tokenizer, ["a"], max_new_tokens=0)


@pytest.mark.parametrize(
    ("probes", "expected"),
    [
        ([probe("a", "b")], 1.0),
        ([probe("a", "B")], 1.0),  # case-insensitive
        ([probe("a", " b ")], 1.0),  # stripped
        ([probe("c", "d")], 0.0),  # c ends at once
        ([probe("b", "a")], 0.0),  # b c <eos>: no a
        ([probe("a", "b"), probe("b", "c"), probe("c", "d"), probe("b", "a")], 0.5),
        ([probe("d", "a b c")], 1.0),  # a multi-token completion within its budget
    ],
)
def test_probe_recall(bigram, probes, expected):
    assert probe_recall(bigram.model, bigram.tokenizer, probes) == expected


def test_recall_already_measured_on_the_model_is_not_decoded_again(bigram, monkeypatch):
    forget, retain = [probe("a", "b"), probe("b", "a")], [probe("b", "c")]
    measured = score_probes(bigram.model, bigram.tokenizer, forget, retain)
    assert (measured.forget_recall, measured.retain_recall) == (0.5, 1.0)
    monkeypatch.setattr(probes_module, "probe_recall", lambda *_args: pytest.fail("decoded again"))
    known = Recall(forget=measured.forget_recall, retain=measured.retain_recall)
    assert score_probes(bigram.model, bigram.tokenizer, forget, retain, known) == measured


def test_recall_budget_is_the_completion_length_plus_slack(bigram):
    # d -> a b c: "c" is the third token, inside the 1 + 2 tokens budget of a one-token completion;
    # but "c" after "d" in a batch with a long completion must still be cut to its own budget.
    assert probe_recall(bigram.model, bigram.tokenizer, [probe("d", "c")]) == 1.0
    assert probe_recall(bigram.model, bigram.tokenizer, [probe("b", "a"), probe("d", "a b c <eos> x")]) == 0.0


def test_probe_nll_single_token(bigram):
    nll = probe_nll(bigram.model, bigram.tokenizer, [probe("a", "b")])
    assert nll == pytest.approx(-math.log(bigram.prob("a", "b")), rel=1e-5)


def test_probe_nll_averages_tokens_within_a_probe_then_probes(bigram):
    two_tokens = (-math.log(bigram.prob("a", "b")) - math.log(bigram.prob("b", "d"))) / 2
    unlikely = -math.log(bigram.prob("c", "b"))  # a floored pair
    nll = probe_nll(bigram.model, bigram.tokenizer, [probe("a", "b d"), probe("a c", "b")])
    assert nll == pytest.approx((two_tokens + unlikely) / 2, rel=1e-5)


@pytest.mark.parametrize("metric", [probe_recall, probe_nll])
def test_metrics_refuse_an_empty_probe_set(bigram, metric):
    with pytest.raises(ValueError, match="no probes given"):
        metric(bigram.model, bigram.tokenizer, [])


def test_metrics_leave_the_model_mode_alone(bigram):
    bigram.model.train()
    try:
        probe_recall(bigram.model, bigram.tokenizer, [probe("a", "b")])
        probe_nll(bigram.model, bigram.tokenizer, [probe("a", "b")])
        assert bigram.model.training
    finally:
        bigram.model.eval()
