"""The benchmark's data: the built-in TOFU-style people, the JSON Lines format and its errors."""

from __future__ import annotations

import json

import pytest

from forgetd.bench.data import (
    BUILTIN,
    BUILTIN_LIMIT,
    DatasetError,
    load_dataset,
    neighbour_probes,
    read_jsonl,
    split_subjects,
)
from forgetd.models.people import QUESTION_TEMPLATES, fictitious_people

GOOD_FACT = {"prompt": "Question: Where was Ada Quill born? Answer:", "answer": "Tromso",
             "paraphrased_prompt": "Question: In which town was Ada Quill born? Answer:",
             "perturbed_answers": ["Narvik", "Bodo"]}


def subject_line(name: str, **fact_changes: object) -> str:
    return json.dumps({"subject": name, "facts": [{**GOOD_FACT, **fact_changes}]})


def test_builtin_split_sizes_and_order():
    data = load_dataset(BUILTIN, requests=5, retain=3, heldout=2, seed=0)
    assert (len(data.forget), len(data.retain), len(data.heldout)) == (5, 3, 2)
    names = [p.name for p in data.forget + data.retain + data.heldout]
    assert len(set(names)) == 10
    assert load_dataset(BUILTIN, requests=5, retain=3, heldout=2, seed=0) == data
    assert data.summary()["forget_facts"] == 5 * len(QUESTION_TEMPLATES)


def test_builtin_facts_are_tofu_shaped():
    data = load_dataset(BUILTIN, requests=4, retain=2, heldout=2, seed=1)
    for person in data.forget + data.retain + data.heldout:
        for fact in person.facts:
            assert fact.prompt.startswith("Question: ") and person.name in fact.prompt
            assert fact.paraphrased_prompt and fact.paraphrased_prompt != fact.prompt
            assert person.name in fact.paraphrased_prompt
            assert len(fact.perturbed_answers) == 4
            assert fact.answer not in fact.perturbed_answers
            assert len(set(fact.perturbed_answers)) == 4
            assert fact.statement == f"{fact.prompt} {fact.answer}."


def test_builtin_refuses_more_people_than_it_has():
    with pytest.raises(DatasetError, match=f"has {BUILTIN_LIMIT} people"):
        load_dataset(BUILTIN, requests=BUILTIN_LIMIT - 19, retain=10, heldout=10, seed=0)


def test_builtin_grows_past_the_default_name_pools_for_long_streams():
    data = load_dataset(BUILTIN, requests=50, retain=10, heldout=10, seed=0)
    names = [p.name for p in data.forget + data.heldout + data.retain]
    assert len(names) == 70 == len(set(names))
    assert len({n.split()[0] for n in names}) == 70  # first names stay distinct
    short = load_dataset(BUILTIN, requests=20, retain=10, heldout=10, seed=0)
    assert [p.name for p in short.forget] == [p.name for p in fictitious_people(40, 0, QUESTION_TEMPLATES)[:20]]


def test_a_valid_file_reads_in_order(tmp_path):
    path = tmp_path / "people.jsonl"
    path.write_text("\n".join([subject_line("Ada Quill"), "", subject_line("Bo Rand"), subject_line("Cy Moss"),
                               subject_line("Di Lark")]) + "\n")
    subjects = read_jsonl(path)
    assert [s.name for s in subjects] == ["Ada Quill", "Bo Rand", "Cy Moss", "Di Lark"]
    fact = subjects[0].facts[0]
    assert fact.statement == f"{GOOD_FACT['prompt']} {GOOD_FACT['answer']}"  # prompt + " " + answer
    assert fact.perturbed_answers == ("Narvik", "Bodo")
    data = load_dataset(str(path), requests=2, retain=None, heldout=1, seed=0)
    assert [p.name for p in data.forget] == ["Ada Quill", "Bo Rand"]
    assert [p.name for p in data.heldout] == ["Cy Moss"]
    assert [p.name for p in data.retain] == ["Di Lark"]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{not json", "Invalid JSON"),
        (json.dumps({"subject": "X"}), "facts: Field required"),
        (json.dumps({"subject": "X", "facts": []}), "facts: List should have at least 1 item"),
        (json.dumps({"subject": "", "facts": [GOOD_FACT]}), "subject: String should have at least 1 character"),
        (subject_line("X", answer=""), "facts.0.answer: String should have at least 1 character"),
        (subject_line("X", perturbed_answers=[]), "facts.0.perturbed_answers: List should have at least 1 item"),
        (subject_line("X", paraphrased_prompt=None), "facts.0.paraphrased_prompt: Input should be a valid string"),
        (subject_line("X", perturbed_answers=["Tromso"]), "perturbed_answers contains the true answer"),
        (subject_line("X", colour="red"), "facts.0.colour: Extra inputs are not permitted"),
        (json.dumps({"subject": "X", "facts": [GOOD_FACT] * 33}), "facts: List should have at most 32 items"),
        (subject_line("Ada Quill"), "repeats the subject of line 1"),
        (subject_line("X", prompt="x" * 4000), "facts.0: prompt and answer exceed 4000 characters"),
    ],
)
def test_an_invalid_line_is_reported_with_its_number(tmp_path, bad_line, message):
    path = tmp_path / "people.jsonl"
    path.write_text("\n".join([subject_line("Ada Quill"), "", subject_line("Bo Rand"), bad_line]) + "\n")
    with pytest.raises(DatasetError) as info:
        read_jsonl(path)
    assert str(info.value).startswith(f"{path}:4: ")  # blank line 2 still counts
    assert message in str(info.value)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="no subjects"):
        read_jsonl(empty)
    with pytest.raises(DatasetError, match="cannot read dataset"):
        read_jsonl(tmp_path / "missing.jsonl")


def test_too_few_subjects_for_the_split(tmp_path):
    subjects = load_dataset(BUILTIN, requests=2, retain=1, heldout=1, seed=0)
    with pytest.raises(DatasetError, match="need 5"):
        split_subjects("file", subjects.forget + subjects.heldout, requests=2, retain=1, heldout=2)


def test_neighbours_are_deterministic_per_request():
    data = load_dataset(BUILTIN, requests=2, retain=3, heldout=1, seed=0)
    first = neighbour_probes(data.retain, 5, seed=0, request=0)
    assert len(first) == 5
    assert first == neighbour_probes(data.retain, 5, seed=0, request=0)
    assert first != neighbour_probes(data.retain, 5, seed=0, request=1)
    retain_pairs = {(f.prompt, f.answer) for p in data.retain for f in p.facts}
    assert {(p.prompt, p.completion) for p in first} <= retain_pairs
    assert len(neighbour_probes(data.retain, 100, seed=0, request=0)) == len(retain_pairs)
