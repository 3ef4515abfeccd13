"""Does the model hold what a request asks it to forget? Requests it does not hold end ``not_memorized``.

A request is held when the model reproduces some of it: one of its forget probes is recalled greedily
(:func:`forgetd.eval.probes.probe_hits`). A model that produces none of it answers like one that never
saw the text, so an update could only over-forget, and verification (which reads recall) would pass it
without it having removed anything. Extraction strength (Wang et al. 2025) is reported next to it but does
not decide: the last token of a multi-token answer is often predictable from its first tokens alone
(a pretrained model completes a place name it never learned for this person), which would make
never-seen text look held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from forgetd.eval.extraction import extraction_strengths
from forgetd.eval.lm import CausalLM
from forgetd.eval.probes import probe_hits
from forgetd.payload import DeletionPayload


@dataclass(frozen=True)
class Memorisation:
    """How much of one request the model reproduces."""

    recall: float  # share of the request's forget probes recalled greedily
    extraction: float  # mean extraction strength of its forget probes

    @property
    def held(self) -> bool:
        return self.recall > 0


def memorisation(model: CausalLM, tokenizer: PreTrainedTokenizerBase,
                 payloads: Sequence[DeletionPayload]) -> list[Memorisation]:
    """One :class:`Memorisation` per payload, in order (probes of all payloads scored in one pass)."""
    probes = [payload.forget_probes() for payload in payloads]
    flat = [probe for group in probes for probe in group]
    hits = probe_hits(model, tokenizer, flat)
    strengths = extraction_strengths(model, tokenizer, flat)
    out, start = [], 0
    for group in probes:
        end = start + len(group)
        out.append(Memorisation(sum(hits[start:end]) / len(group), sum(strengths[start:end]) / len(group)))
        start = end
    return out
