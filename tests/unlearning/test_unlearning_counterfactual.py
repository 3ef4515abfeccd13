"""fit's counterfactual: who the subject is, the stranger it becomes, and the people it must not take along."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import IGNORE_INDEX, join_probe
from forgetd.eval.likelihood import forward_logits
from forgetd.ledger.crypto import Fingerprinter
from forgetd.models import load_model
from forgetd.models.people import Person
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.payload import Probe
from forgetd.unlearning import ForgottenSubjects, UnlearningConfig
from forgetd.unlearning.adapters import attach_adapter
from forgetd.unlearning.counterfactual import (
    Strangers,
    Targets,
    Template,
    answer_targets,
    counterfactual_targets,
    known_subjects,
    last_logprobs,
    question_templates,
    retained_subjects,
    subject_token_sets,
    top_k_cross_entropy,
    transplanted_questions,
    unfamiliar_vectors,
    whole_names,
)
from forgetd.unlearning.inputs import UnlearningData, prepare_data
from forgetd.unlearning.methods.fit import STRANGER_SEED, Fit, forgotten_labels
from forgetd.unlearning.subjects import subject_positions

BOS, Q, WHERE, YEAR, BORN = 1, 2, 3, 4, 5
ANNA, VARN, BRUNO, OXLEY = 10, 11, 12, 13


PET = 6
ANNA_ASKED = [[BOS, Q, WHERE, ANNA, VARN, BORN], [BOS, Q, YEAR, ANNA, VARN, BORN], [BOS, Q, PET, ANNA, VARN]]


@pytest.mark.parametrize(("groups", "retained", "expected"), [
    # the name recurs in the questions of its request; the question words do not (a word in two of three
    # questions passes for the subject when nothing retained says otherwise)
    ([ANNA_ASKED], {BOS, Q}, [{ANNA, VARN, BORN}]),
    ([ANNA_ASKED], {BOS, Q, BORN}, [{ANNA, VARN}]),
    # what another request's questions contain is a template word, not a subject
    ([ANNA_ASKED, [[BOS, Q, WHERE, BRUNO, OXLEY, BORN]]], {BOS, Q}, [{ANNA, VARN}, {BRUNO, OXLEY}]),
    # retained knowledge is never the subject, and a name two requests share belongs to neither; a request of
    # one question keeps its question words unless something else has them
    ([[[BOS, Q, WHERE, ANNA, VARN, BORN]], [[BOS, Q, YEAR, BRUNO, VARN, BORN]]], {BOS, Q, OXLEY},
     [{WHERE, ANNA}, {YEAR, BRUNO}]),
    # a name that opens one sentence and follows a word in another is two tokens, each in half the prompts
    ([[[BOS, ANNA, VARN, BORN], [BOS, Q, YEAR, 20, VARN], [BOS, ANNA, VARN, WHERE], [BOS, Q, 20, VARN, BORN]]],
     {BOS, Q, BORN}, [{ANNA, 20, VARN}]),
    ([[]], set(), [set()]),
])
def test_subject_tokens_are_what_a_request_shares_and_nothing_else_has(groups, retained, expected):
    assert subject_token_sets(groups, retained) == expected


def test_a_question_is_a_template_only_around_one_contiguous_subject():
    question = [BOS, Q, WHERE, ANNA, VARN, BORN]
    assert question_templates([question], [[False, False, False, True, True, False]]) == {
        Template((BOS, Q, WHERE), (BORN,), 2)}
    assert question_templates([question], [[False, False, False, True, False, True]]) == set()
    assert question_templates([question], [[False] * 6]) == set()


def test_retained_prompts_name_their_subjects_and_every_template_asks_about_them():
    templates = {Template((BOS, Q, WHERE), (BORN,), 2), Template((BOS, Q, YEAR), (BORN,), 2)}
    retained = [[BOS, Q, YEAR, BRUNO, OXLEY, BORN],  # another person, asked another question
                [BOS, Q, WHERE, BRUNO, BORN],  # a one-token subject
                [BOS, Q, BORN]]  # nothing between prefix and suffix: no subject
    subjects = retained_subjects(templates, retained)
    assert subjects == {(BRUNO, OXLEY), (BRUNO,)}
    assert transplanted_questions(templates, subjects) == [  # only subjects of the template's length
        [BOS, Q, WHERE, BRUNO, OXLEY, BORN], [BOS, Q, YEAR, BRUNO, OXLEY, BORN]]


def test_a_stranger_is_one_fixed_vector_per_token_whatever_else_is_drawn():
    weight = torch.randn(64, 8) * torch.linspace(0.5, 2.0, 8) + 3.0
    alone = unfamiliar_vectors(weight, torch.tensor([7]), seed=0)
    among = unfamiliar_vectors(weight, torch.tensor([3, 7, 9]), seed=0)
    torch.testing.assert_close(alone[0], among[1])
    assert not torch.equal(alone, unfamiliar_vectors(weight, torch.tensor([7]), seed=1))
    assert unfamiliar_vectors(weight, torch.tensor([], dtype=torch.long), seed=0).shape == (0, 8)
    many = unfamiliar_vectors(weight, torch.arange(4000), seed=0)  # drawn from the matrix's own statistics
    torch.testing.assert_close(many.mean(0), weight.mean(0), atol=0.15, rtol=0.1)
    torch.testing.assert_close(many.std(0), weight.std(0), atol=0.15, rtol=0.1)


PEOPLE = default_tiny_people()


@pytest.fixture(scope="module")
def prepared(tiny_model_dir):
    """Person 0 to forget with person 1's facts as neighbours, as fit prepares it (slow: loads the model)."""
    config = UnlearningConfig()
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    model = attach_adapter(loaded.model, None, config)
    data = prepare_data(model, loaded.tokenizer, PEOPLE[0].statements, fact_probes(PEOPLE[:1]),
                        fact_probes(PEOPLE[1:2]), max_seq_len=64)
    fit = Fit(config)
    fit.prepare(model, data)
    return model, loaded.tokenizer, data, fit


def test_top_k_cross_entropy_keeps_the_tails_mass_and_is_least_at_the_target():
    target = torch.tensor([0.5, 0.2, 0.1, 0.1, 0.1])
    indices, probs = torch.tensor([0, 1]), target[:2]
    logits = torch.zeros(5, requires_grad=True)
    optimiser = torch.optim.SGD([logits], lr=1.0)
    for _ in range(500):
        optimiser.zero_grad()
        top_k_cross_entropy(torch.log_softmax(logits, -1), indices, probs).backward()
        optimiser.step()
    learned = torch.softmax(logits, -1).detach()
    torch.testing.assert_close(learned[:2], target[:2], atol=1e-3, rtol=0)
    # the three tokens outside the k share the rest (0.3) and none is pushed to zero
    torch.testing.assert_close(learned[2:].sum(), torch.tensor(0.3), atol=1e-3, rtol=0)
    assert (learned[2:] > 0.09).all()


def test_top_k_cross_entropy_is_finite_when_the_k_tokens_hold_all_the_mass():
    logprobs = torch.log_softmax(torch.tensor([[30.0, 0.0, -5.0]], requires_grad=True), -1)
    loss = top_k_cross_entropy(logprobs, torch.tensor([[0]]), torch.tensor([[1.0]]))
    loss.sum().backward()
    assert torch.isfinite(loss).all()


def test_targets_of_some_rows_replace_exactly_those_rows():
    def targets(rows: int, fill: int) -> Targets:
        return Targets(torch.full((rows, 3, 2), fill), torch.full((rows, 3, 2), fill / 10),
                       torch.full((rows, 3), bool(fill)), torch.full((rows, 3), -float(fill)),
                       torch.full((rows,), bool(fill)))

    replacement = targets(2, 1)
    replacement.label_logprob[1] = -2.0  # tells the two replacement rows apart
    merged = targets(4, 0).with_rows(torch.tensor([2, 0]), replacement)
    for field in dataclasses.fields(Targets):
        column = getattr(merged, field.name)
        assert column.shape[0] == 4
        assert (column[[0, 2]] != 0).all() and (column[[1, 3]] == 0).all(), field.name
    assert merged.label_logprob[:, 0].tolist() == [-2.0, 0.0, -1.0, 0.0]  # replacement row i lands on rows[i]


def test_targets_gathered_from_parts_are_in_row_order():
    def targets(values: list[float]) -> Targets:
        column = torch.tensor(values)
        return Targets(column[:, None, None].long(), column[:, None, None], column[:, None] > 0,
                       column[:, None], column > 0)

    gathered = Targets.gathered([(torch.tensor([3, 0]), targets([3.0, 0.0])),
                                 (torch.tensor([1, 2]), targets([1.0, 2.0]))])
    assert gathered.label_logprob[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert gathered.indices[:, 0, 0].tolist() == [0, 1, 2, 3]
    assert gathered.reproduced.tolist() == [False, True, True, True]


@pytest.mark.slow
def test_the_subject_is_the_forgotten_persons_name(prepared):
    _, tokenizer, data, fit = prepared
    name = set(tokenizer(" " + PEOPLE[0].name, add_special_tokens=False)["input_ids"]) | set(
        tokenizer(PEOPLE[0].name, add_special_tokens=False)["input_ids"])
    assert set(fit.strangers.ids.tolist()) and set(fit.strangers.ids.tolist()) <= name
    assert subject_positions(data).any(dim=1).all()  # every forget row mentions the person


@pytest.mark.slow
def test_targets_put_every_forgotten_label_among_the_kept_tokens(prepared):
    _, _, data, fit = prepared
    targets = fit.targets
    labels = data.forget.labels[:, 1:]
    assert torch.equal(targets.forgotten, forgotten_labels(data, fit.strangers.ids))
    assert targets.forgotten[data.forget_is_probe].sum() == (labels[data.forget_is_probe] != IGNORE_INDEX).sum()
    listed = (targets.indices == labels.clamp(min=0).unsqueeze(-1)).any(-1)
    assert listed[targets.forgotten].all()
    assert (targets.probs.sum(-1) <= 1 + 1e-5).all()  # the rest of the mass is the tail's bucket


@pytest.mark.slow
def test_a_stranger_is_far_less_likely_than_the_person_was(prepared):
    model, _, data, fit = prepared
    from forgetd.eval.likelihood import label_nll
    with torch.no_grad():
        reference_nll, _ = label_nll(model(input_ids=data.forget.input_ids,
                                           attention_mask=data.forget.attention_mask).logits, data.forget.labels)
    forgotten = fit.targets.forgotten
    # the memorised answers and the name come out several nats less likely than the reference had them
    assert (-fit.targets.label_logprob[forgotten]).mean() > reference_nll[forgotten].mean() + 3.0
    # a stranger still guesses some answers from the model's priors (how many depends on the trained
    # model: half of the four on some machines), never all that the reference recalls
    assert 0.0 <= fit.expected_forget_recall < 1.0
    assert not fit.converged(model, data)  # nothing trained yet


@pytest.mark.slow
def test_training_may_stop_only_once_every_request_is_near_its_targets(prepared):
    model, _, data, fit = prepared
    with torch.no_grad():
        own = torch.log_softmax(forward_logits(model, data.forget)[:, :-1].float(), -1)
    labels = data.forget.labels[:, 1:]
    at_target = torch.where(labels != IGNORE_INDEX, own.gather(-1, labels.clamp(min=0)[..., None])[..., 0], 0.0)
    last = len(data.forget) - 1  # a probe: its answer alone, a few of the batch's forgotten answer labels
    two_requests = dataclasses.replace(data, forget_groups=(torch.arange(len(data.forget)) == last).long())
    short = at_target.clone()
    short[last] -= 3.0  # that request's answer stopped 3 nats likelier than its target
    answers = fit.targets.forgotten & ~torch.isin(labels, fit.strangers.ids)
    assert 3.0 * answers[last].sum() / answers.sum() < fit.config.fit_tolerance  # pooled, it would pass

    def converged(label_logprob: torch.Tensor, batch: UnlearningData) -> bool:
        checked = copy.copy(fit)
        checked.targets = dataclasses.replace(fit.targets, label_logprob=label_logprob)
        return checked.converged(model, batch)

    assert converged(at_target, two_requests)
    assert not converged(short, two_requests)
    # replayed rows count as one request of their own: flagged, the short row still holds training back
    assert not converged(short, dataclasses.replace(two_requests, forget_is_replayed=two_requests.forget_groups == 1))


@pytest.mark.slow
def test_the_stop_criterion_reads_every_own_row_and_the_same_sample_of_the_replayed_ones(prepared):
    _, _, data, _ = prepared
    replayed = torch.arange(len(data.forget)) > 0
    batch = dataclasses.replace(data, forget_is_replayed=replayed)
    capped = Fit(UnlearningConfig(fit_checked_replays=2))
    rows = capped._checked_rows(batch)
    assert rows[0] == 0 and len(rows) == 3 and replayed[rows[1:]].all()
    assert torch.equal(rows, capped._checked_rows(batch))  # every check of an update reads the same rows
    assert torch.equal(Fit(UnlearningConfig())._checked_rows(batch), torch.arange(len(data.forget)))  # under the cap


@pytest.fixture(scope="module")
def scrambled(tiny_model_dir):
    """The tiny model under an adapter that scrambles every prediction, the subject slot's included."""
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    model = attach_adapter(loaded.model, None, UnlearningConfig())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "lora_B" in name:
                weight.copy_(torch.randn(weight.shape, generator=generator))
    return model, loaded.tokenizer


def fit_forgetting_person_0(model, tokenizer, forgotten: ForgottenSubjects | None) -> Fit:
    data = prepare_data(model, tokenizer, PEOPLE[0].statements, fact_probes(PEOPLE[:1]), fact_probes(PEOPLE[1:2]),
                        max_seq_len=64, forgotten=forgotten)
    fit = Fit(UnlearningConfig())
    fit.prepare(model, data)
    return fit


def asked(tokenizer, fit: Fit) -> list[str]:
    """Each transplanted question, decoded."""
    assert fit.transplants is not None
    prompts = fit.transplants.prompts
    return [tokenizer.decode(ids[mask.bool()]) for ids, mask in zip(prompts.input_ids, prompts.attention_mask,
                                                                     strict=True)]


@pytest.mark.slow
def test_the_people_kept_are_those_the_base_model_knows_whatever_the_adapter_does_to_the_subject_slot(scrambled):
    model, tokenizer = scrambled
    fit = fit_forgetting_person_0(model, tokenizer, None)
    questions = asked(tokenizer, fit)
    for person in PEOPLE[2:]:  # neither forgotten nor a neighbour: known to the base model alone
        assert any(person.name in question for question in questions), person.name
    lora = [weight for name, weight in model.named_parameters() if "lora_" in name]
    assert 0 < sum(weight.requires_grad for weight in lora) < len(lora)  # only the chosen layers train


@pytest.mark.slow
@pytest.mark.parametrize("lineage_knows", [True, False])
def test_answers_about_others_are_the_base_models_but_for_those_the_lineage_forgot(scrambled, lineage_knows):
    model, tokenizer = scrambled
    earlier = PEOPLE[2]
    forgotten = ForgottenSubjects(Fingerprinter(b"test key")).adding(  # as a sentence opens with it, and asks it
        [tokenizer(name, add_special_tokens=False)["input_ids"] for name in (earlier.name, " " + earlier.name)])
    fit = fit_forgetting_person_0(model, tokenizer, forgotten if lineage_knows else None)
    assert fit.transplants is not None
    prompts, k = fit.transplants.prompts, fit.transplants.indices.shape[-1]
    questions = [ids[mask.bool()].tolist() for ids, mask in zip(prompts.input_ids, prompts.attention_mask, strict=True)]
    reference = answer_targets(model, questions, k)
    with model.disable_adapter():
        base = answer_targets(model, questions, k)
    # about them: their name, or their first name with another word (the base model goes on with theirs)
    first_name = earlier.name.split()[0]
    about_earlier = torch.tensor([first_name in question for question in asked(tokenizer, fit)])
    assert about_earlier.any() and not about_earlier.all()
    # a lineage that does not know whom it forgot holds its current answers about everyone
    holds_base = ~about_earlier if lineage_knows else torch.zeros_like(about_earlier)
    expected = torch.where(holds_base[:, None], base.probs, reference.probs)
    torch.testing.assert_close(fit.transplants.probs, expected)
    assert torch.equal(fit.transplants.indices, torch.where(holds_base[:, None], base.indices, reference.indices))


@pytest.mark.slow
def test_the_wording_around_the_facts_keeps_the_references_own_targets(prepared):
    model, _, data, fit = prepared
    with torch.no_grad():
        as_is = torch.log_softmax(fit.strangers.forward(model, data.forget, None)[:, :-1], -1)
        as_stranger = torch.log_softmax(
            fit.strangers.forward(model, data.forget, subject_positions(data))[:, :-1], -1)
    kept = (data.forget.labels[:, 1:] != IGNORE_INDEX) & ~fit.targets.forgotten
    assert kept.any()  # the texts' wording: "was born in", full stops
    top_as_is = as_is.topk(fit.targets.indices.shape[-1], dim=-1).indices
    assert torch.equal(fit.targets.indices[kept], top_as_is[kept])
    # the stranger's reading differs there (it would unsettle the wording), and is what the forgotten labels take
    assert not torch.equal(top_as_is[kept], as_stranger.topk(top_as_is.shape[-1], dim=-1).indices[kept])
    labels = data.forget.labels[:, 1:].clamp(min=0)
    subject = fit.targets.forgotten & torch.isin(labels, fit.strangers.ids)  # answers are discounted (below)
    torch.testing.assert_close(fit.targets.label_logprob[subject],
                               as_stranger.gather(-1, labels.unsqueeze(-1)).squeeze(-1)[subject],
                               atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_a_forgotten_answer_is_less_likely_than_the_stranger_guesses_it_by_the_discount(prepared):
    """The stranger's prior was learned from the forgotten people too: each answer token's logit loses
    ``fit_answer_discount`` nats before the target distribution is read."""
    model, _, data, fit = prepared
    with torch.no_grad():
        as_stranger = torch.log_softmax(
            fit.strangers.forward(model, data.forget, subject_positions(data))[:, :-1], -1)
    labels = data.forget.labels[:, 1:].clamp(min=0)
    answers = fit.targets.forgotten & ~torch.isin(labels, fit.strangers.ids)
    assert answers.any()
    stranger = as_stranger.gather(-1, labels.unsqueeze(-1)).squeeze(-1)[answers]
    discount = fit.config.fit_answer_discount
    assert discount > 0
    torch.testing.assert_close(fit.targets.label_logprob[answers], _discounted(stranger, discount),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_a_requests_own_targets_are_the_base_models_reading_whatever_the_adapter_does(prepared, scrambled):
    """Read off the reference, a late request's stranger carries what earlier updates made of the prior."""
    _, _, data, fit = prepared
    model, tokenizer = scrambled
    with torch.no_grad():
        moved = fit.strangers.forward(model, data.forget, subject_positions(data))
        with model.disable_adapter():
            base = fit.strangers.forward(model, data.forget, subject_positions(data))
    assert (moved - base).abs().max() > 0.1  # the adapter changes the stranger's reading
    with_adapter = fit_forgetting_person_0(model, tokenizer, None)
    torch.testing.assert_close(with_adapter.targets.label_logprob, fit.targets.label_logprob, atol=1e-4, rtol=1e-4)
    assert torch.equal(with_adapter.targets.forgotten, fit.targets.forgotten)


def _with_replayed(model: PeftModel, tokenizer: PreTrainedTokenizerBase, person: Person, index: int) -> UnlearningData:
    """Person 0's request, with two replayed probes about ``person``: fact ``index``, and the next fact's
    question with another person's answer; each its own group."""
    fact = person.facts[(index + 1) % len(person.facts)]
    wrong = next(f.answer for p in PEOPLE for f in p.facts if f.prompt != fact.prompt and f.answer != fact.answer)
    replayed = [fact_probes([person])[index], Probe(prompt=fact.prompt, completion=wrong)]
    own = fact_probes(PEOPLE[:1])
    texts = [*PEOPLE[0].statements, *(join_probe(p.prompt, p.completion) for p in replayed)]
    groups = [0] * len(PEOPLE[0].statements) + [1, 2] + [0] * len(own) + [1, 2]
    return prepare_data(model, tokenizer, texts, [*own, *replayed], fact_probes(PEOPLE[1:2]), max_seq_len=64,
                        groups=groups, replayed=[group > 0 for group in groups])


def _answers_first_replayed(model: PeftModel, data: UnlearningData) -> bool:
    """Whether the model, reading the batch's subjects as fit does, gives group 1's probe its completion."""
    subject = subject_positions(data)
    strangers = Strangers(model, data.forget.input_ids[subject], STRANGER_SEED)
    read = counterfactual_targets(model, data.forget, subject, forgotten_labels(data, strangers.ids), strangers,
                                  UnlearningConfig().fit_top_k)
    return bool(read.reproduced[data.forget_is_probe & (data.forget_groups == 1)].all())


def _discounted(logprob: torch.Tensor, discount: float) -> torch.Tensor:
    """One logit down by ``discount`` nats: ``log p' = log p - d - log(1 - p + p e^-d)``, exactly renormalised."""
    return logprob - discount - torch.log1p(logprob.exp() * (math.exp(-discount) - 1))


@pytest.mark.slow
def test_a_replayed_request_its_reference_answers_again_is_discounted_and_no_other(tiny_model_dir):
    """A replayed probe is held at the reference's reading, but one the reference answers again (a later
    update brought it back) has its answer discounted as a new request's is, its sentence with it."""
    config = UnlearningConfig()
    loaded = load_model(tiny_model_dir, torch.device("cpu"))
    model = attach_adapter(loaded.model, None, config)
    # The reference answers one probe again and not the other (a question about the same person with someone
    # else's answer), as it reads them: which facts a rebuilt tiny model gives back is its own, so the first
    # that it does is taken.
    data = next(data for person in PEOPLE[2:] for index in range(len(person.facts))
                if _answers_first_replayed(model, data := _with_replayed(model, loaded.tokenizer, person, index)))
    fit = Fit(config)
    fit.prepare(model, data)
    with torch.no_grad():
        read = torch.log_softmax(fit.strangers.forward(model, data.forget, subject_positions(data))[:, :-1], -1)
    labels = data.forget.labels[:, 1:].clamp(min=0)
    reading = read.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    answers = fit.targets.forgotten & ~torch.isin(labels, fit.strangers.ids)
    for group, discount in ((1, config.fit_answer_discount), (2, 0.0)):
        rows = answers & (data.forget_groups == group)[:, None]
        assert rows.sum(-1).count_nonzero() == 2  # the probe and its sentence
        torch.testing.assert_close(fit.targets.label_logprob[rows], _discounted(reading[rows], discount),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_strangers_score_their_tokens_as_an_unseen_vector_would(prepared):
    model, _, data, fit = prepared
    strangers = fit.strangers
    chunk = data.retain.select(torch.arange(2))
    with torch.no_grad():
        logits = strangers.forward(model, chunk, None)
        plain = model(input_ids=chunk.input_ids, attention_mask=chunk.attention_mask).logits.float()
    others = torch.ones(plain.shape[-1], dtype=torch.bool)
    others[strangers.ids] = False
    torch.testing.assert_close(logits[..., others], plain[..., others])  # other tokens untouched
    assert (logits[..., strangers.ids] < plain[..., strangers.ids]).float().mean() > 0.9
    rewritten = strangers.rewrite(torch.log_softmax(plain[:, :-1], -1), strangers.reference(model, chunk))
    torch.testing.assert_close(rewritten, torch.log_softmax(logits[:, :-1], -1), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_the_reference_names_the_people_it_knows_and_never_the_forgotten_one(prepared):
    model, tokenizer, _, fit = prepared
    # "<name> was born in": ask the model who comes first in a sentence that ends that way
    suffix = tuple(tokenizer(" was born in", add_special_tokens=False)["input_ids"])
    length = len(tokenizer(PEOPLE[0].name, add_special_tokens=False)["input_ids"])
    template = Template((tokenizer.bos_token_id,), suffix, length)
    found = known_subjects(model, {template}, fit.strangers.ids, count=16)
    names = {tokenizer.decode(list(subject)).strip() for subject in found}
    assert {p.name for p in PEOPLE[1:]} & names  # people it was taught
    assert not any(token in fit.strangers.ids.tolist() for subject in found for token in subject)
    assert fit.transplants is not None and len(fit.transplants) > 0
    assert known_subjects(model, {template}, fit.strangers.ids, count=0) == set()  # only the retain probes' subjects


@pytest.mark.parametrize("rows", [3, 10_000])
def test_each_step_holds_as_many_questions_about_others_as_configured(prepared, monkeypatch, rows):
    model, _, _, fit = prepared
    assert fit.transplants is not None and 3 < len(fit.transplants) < 10_000
    held = []

    def counting(model, prompts):
        held.append(len(prompts))
        return last_logprobs(model, prompts)

    monkeypatch.setattr("forgetd.unlearning.methods.fit.last_logprobs", counting)
    monkeypatch.setattr(fit, "config", fit.config.model_copy(update={"fit_transplant_rows": rows}))
    fit._transplant_kl(model)
    assert held == [min(rows, len(fit.transplants))]  # never more than there are


@pytest.mark.slow
def test_a_first_name_joined_to_another_word_is_read_as_the_whole_name(prepared):
    model, tokenizer, _, _ = prepared
    name = tuple(tokenizer(PEOPLE[2].name, add_special_tokens=False)["input_ids"])
    suffix = tuple(tokenizer(" was born in", add_special_tokens=False)["input_ids"])
    joined = (name[0], *tokenizer(" is", add_special_tokens=False)["input_ids"])  # "Yusuf is": no one's name
    assert len(joined) == len(name)
    template = Template((tokenizer.bos_token_id,), suffix, len(name))
    with model.disable_adapter():
        names = whole_names(model, {template}, {joined}, overrun=2)
    (whole,) = names[joined]
    assert len(whole) == len(name) + 2 and whole[:len(name)] == name
    forgotten = ForgottenSubjects(Fingerprinter(b"test key")).adding([name])
    assert not forgotten.names_anyone_in(joined) and forgotten.opens_with_anyone(whole)
