"""The fictitious people generator."""

from __future__ import annotations

import pytest

from forgetd.models import Fact, fictitious_people
from forgetd.models.people import FIRST_NAMES


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
