"""unlearn_batch end to end on the tiny model: forget one person, keep the others, continue a lineage."""

from __future__ import annotations

import json
import logging
import re

import pytest
import torch
from peft import PeftModel
from safetensors import safe_open

from forgetd.eval import probe_recall
from forgetd.ledger.crypto import Fingerprinter
from forgetd.models import load_model
from forgetd.models.tiny import default_tiny_people, fact_probes
from forgetd.unlearning import (
    ALL_PROJECTIONS,
    EmptyBatchError,
    ForgottenSubjects,
    UnlearningBatch,
    UnlearningConfig,
    unlearn_batch,
)

pytestmark = pytest.mark.slow
CPU = torch.device("cpu")
PEOPLE = default_tiny_people()
KEY = Fingerprinter(b"test key of the lineage")
LORA_KEY = re.compile(r"base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.(\w+)\.lora_([AB])\.weight")


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def forget_person(index: int, replayed: tuple[int, ...] = (), retain: bool = True,
                  forgotten: ForgottenSubjects | None = None) -> UnlearningBatch:
    """Forget person ``index``, replaying the probes of the earlier requests of people ``replayed``."""
    person = PEOPLE[index]
    kept = [p for i, p in enumerate(PEOPLE) if i != index and i not in replayed]
    return UnlearningBatch(forget_texts=person.statements, forget_probes=fact_probes([person]),
                           retain_probes=fact_probes(kept) if retain else [],
                           replay_probes=fact_probes([PEOPLE[i] for i in replayed]), forgotten=forgotten)


@pytest.fixture(scope="module")
def lineage(tiny_model_dir, tmp_path_factory):
    """Two requests in sequence: forget person 0, then person 1 on top (person 0's probes replayed)."""
    recorder = Recorder()
    forgetd_logger = logging.getLogger("forgetd")
    forgetd_logger.addHandler(recorder)
    old_level = forgetd_logger.level
    forgetd_logger.setLevel(logging.DEBUG)
    try:
        config = UnlearningConfig()
        nobody = ForgottenSubjects(KEY)
        first = unlearn_batch(tiny_model_dir, None, forget_person(0, forgotten=nobody), config,
                              tmp_path_factory.mktemp("v1"), CPU)
        second = unlearn_batch(tiny_model_dir, first.adapter_dir,
                               forget_person(1, replayed=(0,), forgotten=first.forgotten), config,
                               tmp_path_factory.mktemp("v2"), CPU)
    finally:
        forgetd_logger.removeHandler(recorder)
        forgetd_logger.setLevel(old_level)
    return first, second, recorder.lines


def recall_with(tiny_model_dir, adapter_dir, people):
    loaded = load_model(tiny_model_dir, CPU)
    model = PeftModel.from_pretrained(loaded.model, adapter_dir)  # plain peft, nothing of forgetd
    return probe_recall(model, loaded.tokenizer, fact_probes(people))


def forgotten_limit(outcome) -> float:
    return UnlearningConfig().verification.forget_recall_limit(1.0, outcome.report.forget_recall_expected)


def test_first_request_forgets_one_person_and_keeps_the_others(lineage, tiny_model_dir):
    first, _, _ = lineage
    assert first.adapter_dir is not None, first.report.reasons
    assert first.report.passed
    assert first.method == "fit"
    assert 0 < first.steps <= UnlearningConfig().max_steps
    assert first.report.forget_recall_before == 1.0
    assert first.report.forget_extraction_before == 1.0
    assert first.report.forget_extraction_after is not None
    assert first.report.forget_extraction_after < first.report.forget_extraction_before
    assert first.report.forget_recall_int8_after is not None  # the quantisation check ran
    # forgotten down to what a model that never met the person would still guess, and no further
    assert first.report.forget_recall_expected is not None
    assert recall_with(tiny_model_dir, first.adapter_dir, PEOPLE[:1]) <= forgotten_limit(first)
    assert recall_with(tiny_model_dir, first.adapter_dir, PEOPLE[1:]) >= 0.9


def test_saved_adapter_is_a_plain_servable_lora(lineage):
    first, _, _ = lineage
    config = json.loads((first.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 8
    assert config["bias"] == "none"
    assert not config.get("modules_to_save")
    assert set(config["target_modules"]) == set(ALL_PROJECTIONS)
    with safe_open(str(first.adapter_dir / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert all(torch.isfinite(f.get_tensor(key)).all() for key in keys)
    matches = [LORA_KEY.fullmatch(key) for key in keys]
    assert all(matches), [key for key, m in zip(keys, matches, strict=True) if not m]
    assert {m.group(3) for m in matches if m} == set(ALL_PROJECTIONS)
    assert len(keys) == 6 * len(ALL_PROJECTIONS) * 2  # 6 layers, A and B


def test_second_request_continues_from_the_parent(lineage, tiny_model_dir):
    _, second, _ = lineage
    assert second.adapter_dir is not None, second.report.reasons
    assert recall_with(tiny_model_dir, second.adapter_dir, PEOPLE[:2]) <= forgotten_limit(second)  # both
    assert recall_with(tiny_model_dir, second.adapter_dir, PEOPLE[2:]) >= 0.9
    config = json.loads((second.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 8  # the same bounded rank, one adapter per version


def test_each_version_remembers_whom_it_forgot_and_no_one_else(lineage, tiny_model_dir):
    first, second, _ = lineage
    tokenizer = load_model(tiny_model_dir, CPU).tokenizer

    def asked_about(person) -> list[int]:  # the name as a question asks it: after "was", "of"
        return tokenizer(" " + person.name, add_special_tokens=False)["input_ids"]

    assert first.forgotten is not None and second.forgotten is not None
    assert first.forgotten.names_anyone_in(asked_about(PEOPLE[0]))
    assert not any(first.forgotten.names_anyone_in(asked_about(person)) for person in PEOPLE[1:])
    assert len(first.forgotten) < len(second.forgotten)  # the parent's, and person 1 added
    assert all(second.forgotten.names_anyone_in(asked_about(person)) for person in PEOPLE[:2])
    assert not any(second.forgotten.names_anyone_in(asked_about(person)) for person in PEOPLE[2:])


def test_logs_carry_no_text(lineage):
    _, _, lines = lineage
    assert lines
    secrets = {p.name.split()[1] for p in PEOPLE} | {f.answer for p in PEOPLE for f in p.facts}
    leaked = [line for line in lines for secret in secrets if re.search(rf"\b{secret}\b", line)]
    assert not leaked


def test_npo_without_neighbours_keeps_general_behaviour(tiny_model_dir, tmp_path):
    outcome = unlearn_batch(tiny_model_dir, None, forget_person(3, retain=False), UnlearningConfig(method="npo"),
                            tmp_path, CPU)
    assert outcome.adapter_dir is not None, outcome.report.reasons
    assert outcome.method == "npo"
    # Retain probes are then the model's own continuations of generic prompts, and they are kept.
    assert outcome.report.retain_recall_before == 1.0
    assert outcome.report.retain_recall_after >= 0.9
    assert recall_with(tiny_model_dir, outcome.adapter_dir, PEOPLE[3:4]) == 0.0
    # Other people's facts are not protected without neighbours: measured 0.25-0.5 recall on this model,
    # which is why requests should bring neighbours (see the unlearning calibration notes).


def test_every_attempt_failing_saves_nothing(tiny_model_dir, tmp_path):
    weak = UnlearningConfig(learning_rate=1e-7, max_steps=2, check_every=1, max_attempts=2)
    outcome = unlearn_batch(tiny_model_dir, None, forget_person(2, forgotten=ForgottenSubjects(KEY)), weak,
                            tmp_path, CPU)
    assert outcome.adapter_dir is None
    assert outcome.forgotten is None  # nothing published: the lineage forgot no one more
    assert outcome.attempts == 2
    assert not outcome.report.passed
    assert not outcome.report.forget_passed
    assert outcome.report.reasons
    assert not any(tmp_path.iterdir())


def test_a_batch_without_forget_probes_is_refused(tiny_model_dir, tmp_path):
    batch = UnlearningBatch(forget_texts=PEOPLE[0].statements, forget_probes=[], retain_probes=[])
    with pytest.raises(EmptyBatchError):
        unlearn_batch(tiny_model_dir, None, batch, UnlearningConfig(), tmp_path, CPU)


def test_batch_repr_shows_sizes_only():
    text = repr(forget_person(0))
    assert "forget_texts=4" in text
    assert PEOPLE[0].name not in text


@pytest.mark.parametrize("with_probes", [True, False])
def test_a_batch_from_payloads_keeps_every_text_probe_and_neighbour(with_probes):
    from forgetd.payload import DeletionPayload

    payloads = [DeletionPayload(texts=p.statements, probes=fact_probes([p]) if with_probes else [],
                                neighbours=fact_probes([PEOPLE[-1]])) for p in PEOPLE[:2]]
    batch = UnlearningBatch.from_payloads(payloads)
    assert batch.forget_texts == PEOPLE[0].statements + PEOPLE[1].statements
    assert len(batch.forget_probes) == 8  # explicit probes, or one derived from each text
    assert batch.retain_probes == fact_probes([PEOPLE[-1]]) * 2


def test_requests_the_model_does_not_hold_are_not_trained_on(tiny_model_dir, tmp_path):
    from forgetd.payload import DeletionPayload, Probe

    never_seen = DeletionPayload(texts=["Zebulon Quayle was born in Tromso."],
                                 probes=[Probe(prompt="Zebulon Quayle was born in", completion="Tromso")])
    held = DeletionPayload(texts=PEOPLE[4].statements, probes=fact_probes(PEOPLE[4:5]),
                           neighbours=fact_probes(PEOPLE[5:6]))
    only_never_seen = unlearn_batch(tiny_model_dir, None, UnlearningBatch.from_payloads([never_seen]),
                                    UnlearningConfig(), tmp_path / "a", CPU)
    assert only_never_seen.adapter_dir is None
    assert only_never_seen.not_memorized == (0,)
    assert only_never_seen.attempts == 0 and "memorised" in only_never_seen.report.reasons[0]
    mixed = unlearn_batch(tiny_model_dir, None, UnlearningBatch.from_payloads([never_seen, held]),
                          UnlearningConfig(), tmp_path / "b", CPU)
    assert mixed.not_memorized == (0,)
    assert mixed.adapter_dir is not None, mixed.report.reasons
    assert mixed.report.forget_recall_before == 1.0  # only the held request's probes were trained and verified
