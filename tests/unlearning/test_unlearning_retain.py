"""Self-distillation retain probes: the model's own continuations, but never the fact a request forgets."""

from __future__ import annotations

import pytest
import torch

from forgetd.models import load_model
from forgetd.payload import Probe
from forgetd.unlearning.retain import GENERIC_PROMPTS, self_distillation_probes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    return loaded.model, loaded.tokenizer


@pytest.fixture(scope="module")
def all_probes(tiny) -> list[Probe]:
    return self_distillation_probes(*tiny)


def test_every_generic_prompt_the_model_continues_is_kept_when_nothing_conflicts(tiny, all_probes):
    assert all_probes and all(p.prompt in GENERIC_PROMPTS for p in all_probes)
    unrelated = [Probe(prompt="Zebulon Quillfeather was born in", completion="Xanadu")]
    assert self_distillation_probes(*tiny, unrelated) == all_probes


def test_a_generic_prompt_that_a_request_asks_is_left_out(tiny, all_probes):
    asked = all_probes[0]
    forgetting = [Probe(prompt=f"  {asked.prompt} ", completion="anything at all")]

    assert [p.prompt for p in self_distillation_probes(*tiny, forgetting)] == [p.prompt for p in all_probes[1:]]


def test_a_continuation_that_gives_a_forgotten_answer_is_left_out(tiny, all_probes):
    """Another prompt, same answer: "France's capital is::Paris" against "The capital of France is" -> " Paris"."""
    said = all_probes[-1]
    answer = said.completion.split()[0].upper()  # matched as recall matches: stripped, case-insensitive
    forgetting = [Probe(prompt="A question no generic prompt asks", completion=f" {answer} ")]

    kept = self_distillation_probes(*tiny, forgetting)

    assert said not in kept
    assert all(answer.lower() not in p.completion.lower() for p in kept)
    assert [p for p in all_probes if answer.lower() not in p.completion.lower()] == kept
