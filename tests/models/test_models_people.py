"""The fictitious people generator."""

from __future__ import annotations

import pytest

from forgetd.models import Fact, fictitious_people
from forgetd.models.people import FACT_TEMPLATES, FIRST_NAMES, PERTURBED_ANSWERS, QUESTION_TEMPLATES
from forgetd.models.tiny import DEFAULT_SEED, default_tiny_people, tiny_recipe_hash


def test_deterministic_in_seed():
    assert fictitious_people(8, seed=3) == fictitious_people(8, seed=3)
    assert fictitious_people(8, seed=3) != fictitious_people(8, seed=4)


def test_people_are_distinct_with_several_facts():
    people = fictitious_people(len(FIRST_NAMES), seed=0)
    assert len({p.name for p in people}) == len(people)
    assert len({p.name.split()[0] for p in people}) == len(people)
    assert all(len(p.facts) >= 3 for p in people)


def test_no_prompt_is_a_prefix_of_another():
    # Otherwise one prefix would be taught two continuations and greedy recall would be ambiguous.
    prompts = [fact.prompt for person in fictitious_people(8, seed=0) for fact in person.facts]
    assert not [(a, b) for a in prompts for b in prompts if a != b and b.startswith(a + " ")]


def test_statement_format():
    assert Fact("Alice Varn was born in", "Oslo").statement == "Alice Varn was born in Oslo."


@pytest.mark.parametrize("n", [0, -1, len(FIRST_NAMES) + 1])
def test_out_of_range_count_is_refused(n):
    with pytest.raises(ValueError, match=f"got {n}"):
        fictitious_people(n, seed=0)


def test_facts_carry_a_paraphrase_and_wrong_answers_of_the_same_kind():
    for person in fictitious_people(8, seed=0):
        for fact, template in zip(person.facts, FACT_TEMPLATES, strict=True):
            assert fact.paraphrased_prompt == template.paraphrase.format(name=person.name)
            assert fact.answer in template.answers
            assert set(fact.perturbed_answers) <= set(template.answers) - {fact.answer}
            assert len(set(fact.perturbed_answers)) == PERTURBED_ANSWERS


def test_no_paraphrase_is_a_trained_prompt_or_extends_one():
    # A paraphrase that began with a trained prompt would be answered from the training text itself.
    for templates in (FACT_TEMPLATES, QUESTION_TEMPLATES):
        facts = [fact for person in fictitious_people(8, seed=0, templates=templates) for fact in person.facts]
        prompts = {fact.prompt for fact in facts}
        assert not [f for f in facts for p in prompts if (f.paraphrased_prompt or "").startswith(p)]


def test_default_people_and_the_tiny_model_hash_are_unchanged():
    # The paraphrases and wrong answers come from a second random stream: names and answers, and so the
    # default tiny model's recipe hash (and every cached build), stay what they were.
    people = default_tiny_people()
    assert people[0].facts[0].statement == fictitious_people(8, seed=0)[0].facts[0].statement
    assert tiny_recipe_hash(people, DEFAULT_SEED) == "d10387e91bd990e8"


def test_question_templates_give_question_form_facts():
    person = fictitious_people(1, seed=0, templates=QUESTION_TEMPLATES)[0]
    assert len(person.facts) == len(QUESTION_TEMPLATES)
    assert all(f.prompt.startswith("Question: ") and "? Answer:" in f.prompt for f in person.facts)


def test_a_fact_ending_closes_its_statement():
    assert Fact("Q? A:", "yes", ending="").statement == "Q? A: yes"
