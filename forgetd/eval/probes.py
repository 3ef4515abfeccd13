"""Probe metrics: does the model still produce a completion (recall), and how likely does it find it (NLL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import completion_token_count, encode_probes
from forgetd.eval.extraction import extraction_strength
from forgetd.eval.generation import greedy_token_ids
from forgetd.eval.likelihood import forward_logits, sequence_nll
from forgetd.eval.lm import CausalLM, eval_mode
from forgetd.payload import Probe

# Extra tokens generated beyond the completion's own length, so that an equivalent but differently
# split spelling of the answer (or a short article before it) still counts as recalled.
RECALL_SLACK_TOKENS = 2
NLL_BATCH = 32  # probes per forward pass in probe_nll
MAX_PROBE_TOKENS = 512  # probes are short prompt/answer pairs; longer ones are truncated


def probe_recall(model: CausalLM, tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe]) -> float:
    """Share of probes whose completion (stripped, case-insensitive) appears in the greedy continuation."""
    hits = probe_hits(model, tokenizer, probes)
    return sum(hits) / len(hits)


def probe_hits(model: CausalLM, tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe]) -> list[bool]:
    """For each probe, whether its completion (stripped, case-insensitive) is in the greedy continuation.

    Each prompt is continued greedily for as many tokens as its completion takes plus
    ``RECALL_SLACK_TOKENS``; the batch is generated once at the longest budget and each row is cut to its
    own budget before matching.
    """
    _require(probes)
    budgets = [completion_token_count(tokenizer, probe) + RECALL_SLACK_TOKENS for probe in probes]
    rows = greedy_token_ids(model, tokenizer, [probe.prompt for probe in probes], max(budgets))
    texts = tokenizer.batch_decode([row[:budget] for row, budget in zip(rows, budgets, strict=True)],
                                   skip_special_tokens=True)
    return [probe.completion.strip().lower() in text.lower() for probe, text in zip(probes, texts, strict=True)]


@torch.no_grad()
def probe_nll(model: CausalLM, tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe]) -> float:
    """Mean over probes of the per-token NLL (nats) of the completion given the prompt.

    Each probe weighs the same whatever its completion's length.
    """
    _require(probes)
    batch = encode_probes(tokenizer, probes, MAX_PROBE_TOKENS)
    per_probe: list[torch.Tensor] = []  # [chunk] mean NLL of each probe's completion tokens
    with eval_mode(model):
        for chunk in batch.chunks(NLL_BATCH):
            chunk = chunk.to(model.device)
            total, count = sequence_nll(forward_logits(model, chunk), chunk.labels)
            per_probe.append(total / count)
    return float(torch.cat(per_probe).mean())


@dataclass(frozen=True)
class ProbeScores:
    """A model's scores on the forget probes and the retain probes of one update.

    ``forget_extraction`` is the forget probes' mean extraction strength (see
    :mod:`forgetd.eval.extraction`), None where it was not measured.
    """

    forget_recall: float
    forget_nll: float
    retain_recall: float
    retain_nll: float
    forget_extraction: float | None = None


@dataclass(frozen=True)
class Recall:
    """Greedy recall of the forget probes and of the retain probes (None: not measured) of one model."""

    forget: float
    retain: float | None


def score_probes(model: CausalLM, tokenizer: PreTrainedTokenizerBase, forget: Sequence[Probe],
                 retain: Sequence[Probe], known: Recall | None = None) -> ProbeScores:
    """Recall and NLL on both probe sets (neither may be empty), and the forget probes' extraction strength.

    ``known``: recall already measured on this very model (greedy decoding is deterministic), not decoded
    again: decoding is the costliest score of a large model."""
    known = known or Recall(forget=probe_recall(model, tokenizer, forget), retain=None)
    return ProbeScores(
        forget_recall=known.forget,
        forget_nll=probe_nll(model, tokenizer, forget),
        retain_recall=probe_recall(model, tokenizer, retain) if known.retain is None else known.retain,
        retain_nll=probe_nll(model, tokenizer, retain),
        forget_extraction=extraction_strength(model, tokenizer, forget),
    )


def _require(probes: Sequence[Probe]) -> None:
    if not probes:
        raise ValueError("no probes given: a metric over an empty probe set is undefined")
