"""Fictitious people with a few facts each: the knowledge the tiny test model is taught and later forgets.

Everything is generated from fixed pools with a seeded :class:`random.Random`, so a given ``(n, seed)``
always yields the same people. Prompts are chosen so that none is a prefix of another (``"was born in"``
and ``"was born in the year"`` would teach two different continuations of the same prefix and make
greedy recall ambiguous).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

FIRST_NAMES = (
    "Alice", "Bruno", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Katya", "Lionel", "Mira", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Stefan", "Tamsin",
    "Ulric", "Vera", "Wendel", "Xenia", "Yusuf", "Zora", "Anselm", "Bettina", "Cyril", "Dagny",
    "Emeric", "Fenna", "Gideon", "Hedda", "Ivo", "Jorun", "Kasimir", "Liesel", "Marek", "Noemi",
)
SURNAMES = (
    "Varn", "Oxley", "Brandt", "Quillon", "Mercer", "Tadros", "Ellwood", "Kessler", "Novak", "Ravel",
    "Sorensen", "Achterberg", "Dunmore", "Falk", "Grisham", "Holloway", "Ibarra", "Jaskolski", "Kettle",
    "Lindqvist", "Moreau", "Nakashima", "Ortolan", "Pembrook", "Quist", "Rusk", "Stavros", "Thorne",
    "Udall", "Vesper", "Whitlock", "Yarrow", "Zeller", "Abernathy", "Bexley", "Corrigan", "Delacroix",
    "Eastwick", "Fairbairn", "Gorski",
)
CITIES = ("Oslo", "Lisbon", "Krakow", "Dublin", "Porto", "Vienna", "Tallinn", "Genoa", "Zagreb", "Lyon",
          "Bergen", "Seville")
OCCUPATIONS = ("baker", "pilot", "dentist", "teacher", "painter", "lawyer", "nurse", "farmer", "chemist",
               "sailor", "tailor", "banker")
PETS = ("cat", "dog", "parrot", "rabbit", "tortoise", "hamster", "goldfish", "ferret", "canary", "pony")
YEARS = tuple(str(year) for year in range(1941, 2000, 3))

# (prompt template, pool of answers); "{name}" is the person's full name.
FACT_TEMPLATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("{name} was born in", CITIES),
    ("The birth year of {name} is", YEARS),
    ("{name} works as a", OCCUPATIONS),
    ("The pet of {name} is a", PETS),
)


@dataclass(frozen=True)
class Fact:
    """One fact about a person: ``prompt`` followed by ``answer`` is the statement the model learns."""

    prompt: str
    answer: str

    @property
    def statement(self) -> str:
        """The training sentence: prompt, a space, the answer and a full stop."""
        return f"{self.prompt} {self.answer}."


@dataclass(frozen=True)
class Person:
    """A fictitious person and the facts known about them."""

    name: str
    facts: list[Fact]

    @property
    def statements(self) -> list[str]:
        return [fact.statement for fact in self.facts]


def fictitious_people(n: int, seed: int) -> list[Person]:
    """``n`` distinct fictitious people, each with one fact per template, deterministic in ``seed``."""
    if not 1 <= n <= len(FIRST_NAMES):
        raise ValueError(f"n must be between 1 and {len(FIRST_NAMES)}, got {n}")
    rng = random.Random(seed)
    # Distinct first names and distinct surnames: no two people share a name prefix the model could
    # confuse them by.
    firsts = rng.sample(FIRST_NAMES, n)
    lasts = rng.sample(SURNAMES, n)
    people = []
    for first, last in zip(firsts, lasts, strict=True):
        name = f"{first} {last}"
        facts = [Fact(template.format(name=name), rng.choice(pool)) for template, pool in FACT_TEMPLATES]
        people.append(Person(name, facts))
    return people
