"""The losses at the reference point (an untrained adapter), where their values are known in closed form."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from forgetd.eval.likelihood import forward_logits, label_nll
from forgetd.eval.probes import ProbeScores, Recall
from forgetd.models import load_model
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.unlearning import UnlearningConfig, trainer
from forgetd.unlearning.adapters import attach_adapter
from forgetd.unlearning.inputs import UnlearningData, prepare_data
from forgetd.unlearning.methods.graddiff import GradDiff
from forgetd.unlearning.methods.npo import NPO
from forgetd.unlearning.trainer import train_adapter

pytestmark = pytest.mark.slow
CONFIG = UnlearningConfig(retain_weight=0.5, kl_weight=2.0, npo_beta=0.1)


@pytest.fixture(scope="module")
def setup(tiny_model_dir):
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    model = attach_adapter(loaded.model, None, CONFIG)
    people = default_tiny_people()
    data = prepare_data(model, loaded.tokenizer, people[0].statements, fact_probes(people[:1]),
                        fact_probes(people[1:]), max_seq_len=64)
    return model, data


def step_inputs(data: UnlearningData):
    return data.sample(batch_size=1000, generator=torch.Generator().manual_seed(0))


def test_graddiff_terms_at_the_reference(setup):
    model, data = setup
    inputs = step_inputs(data)
    terms = GradDiff(CONFIG).loss(model, inputs)
    nll, mask = label_nll(forward_logits(model, inputs.forget), inputs.forget.labels)
    assert terms.forget.item() == pytest.approx(-(nll.sum() / mask.sum()).item(), rel=1e-5)
    assert terms.kl.item() == pytest.approx(0.0, abs=1e-5)  # the adapter starts as the identity
    expected = terms.forget + 0.5 * terms.retain_nll + 2.0 * terms.kl
    assert terms.total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_npo_forget_term_at_the_reference_is_two_over_beta_log_two(setup):
    model, data = setup
    terms = NPO(CONFIG).loss(model, step_inputs(data))
    assert terms.forget.item() == pytest.approx(2 / 0.1 * math.log(2), rel=1e-4)


def test_npo_shares_graddiff_retain_terms(setup):
    model, data = setup
    inputs = step_inputs(data)
    graddiff, npo = GradDiff(CONFIG).loss(model, inputs), NPO(CONFIG).loss(model, inputs)
    assert npo.retain_nll.item() == pytest.approx(graddiff.retain_nll.item())
    assert npo.kl.item() == pytest.approx(graddiff.kl.item(), abs=1e-6)


def test_only_the_adapter_gets_gradients(setup):
    model, data = setup
    model.zero_grad(set_to_none=True)
    GradDiff(CONFIG).loss(model, step_inputs(data)).total.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    assert with_grad
    assert all(".lora_A." in name or ".lora_B." in name for name in with_grad)


def test_sampling_draws_distinct_rows_when_the_set_is_larger_than_a_batch(setup):
    _, data = setup
    inputs = data.sample(batch_size=5, generator=torch.Generator().manual_seed(0))
    assert len(inputs.forget) == 5
    assert len(inputs.retain) == 5
    assert inputs.retain_ref_logprobs.shape[0] == 5
    assert len({tuple(row) for row in inputs.retain.input_ids.tolist()}) == 5


class _NeverConverges(GradDiff):
    def __init__(self, config: UnlearningConfig) -> None:
        super().__init__(config)
        self.asked = 0

    def converged(self, model, data) -> bool:
        self.asked += 1
        return False


@pytest.mark.parametrize(("replayed", "own_drawn"), [(2, 3), (6, 2)])
def test_replayed_rows_take_their_share_of_a_step_and_what_the_own_rows_leave(setup, replayed, own_drawn):
    _, data = setup
    flags = torch.arange(len(data.forget)) >= len(data.forget) - replayed
    data = dataclasses.replace(data, forget_is_replayed=flags)
    inputs = data.sample(batch_size=4, generator=torch.Generator().manual_seed(0), replay_share=0.25)
    assert len(inputs.forget) == 4 and len(set(inputs.forget_rows.tolist())) == 4
    assert int((~flags[inputs.forget_rows]).sum()) == own_drawn


def test_recall_is_decoded_only_once_the_method_says_it_has_converged(tiny_model_dir, monkeypatch):
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    config = CONFIG.model_copy(update={"max_steps": 6, "check_every": 2})
    model = attach_adapter(loaded.model, None, config)
    people = default_tiny_people()
    probes, kept = fact_probes(people[:1]), fact_probes(people[1:2])
    data = prepare_data(model, loaded.tokenizer, [], probes, kept, max_seq_len=64)
    before = ProbeScores(forget_recall=1.0, forget_nll=0.0, retain_recall=1.0, retain_nll=0.0)
    retain_recalls = iter([0.5, 0.9])  # the first check finds the neighbours in a dip, the second back
    decoded = []

    def recall(_model, _tokenizer, scored):
        decoded.append(scored)
        return next(retain_recalls) if scored is kept else 0.0

    monkeypatch.setattr(trainer, "probe_recall", recall)
    method = _NeverConverges(config)
    result = train_adapter(model, loaded.tokenizer, method, data, probes, kept, before, config)
    assert (result.steps, result.stopped_early, method.asked, decoded) == (6, False, 3, [])
    # a method that has converged stops at the first check whose forget recall is low enough and whose
    # retain recall is within the policy's allowed drop (0.1)
    result = train_adapter(model, loaded.tokenizer, GradDiff(config), data, probes, kept, before, config)
    assert (result.steps, result.stopped_early, decoded) == (4, True, [probes, kept, probes, kept])
    assert result.recall == Recall(forget=0.0, retain=0.9)  # what it stopped on, for verification to reuse
