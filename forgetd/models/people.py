"""Fictitious people with a few facts each: the knowledge the tiny test model is taught and later forgets.

Everything is generated from fixed pools with a seeded :class:`random.Random`, so a given ``(n, seed)``
always yields the same people. Prompts are chosen so that none is a prefix of another (``"was born in"``
and ``"was born in the year"`` would teach two different continuations of the same prefix and make
greedy recall ambiguous).

Each fact also carries what a TOFU-style evaluation needs (Maini et al. 2024, "TOFU: A Task of Fictitious
Unlearning for LLMs", sec. 2.2): a paraphrased prompt that is never trained on, and perturbed answers
(other values of the same kind, wrong but plausible). These come from a second random stream, so adding
them left the names and answers of a given ``(n, seed)`` exactly as they were.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
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
EMPLOYERS = ("Norvex", "Calderon", "Brightwell", "Ostara", "Quintec", "Halvard", "Lumora", "Teskar",
             "Verdane", "Mistral", "Orbital", "Pennick")
INSTRUMENTS = ("violin", "cello", "flute", "piano", "guitar", "trumpet", "harp", "oboe", "drums", "banjo")

PERTURBED_ANSWERS = 4  # wrong answers per fact (TOFU uses 5; the smallest pool here has 10 values)


@dataclass(frozen=True)
class FactTemplate:
    """How one kind of fact is asked: the trained prompt, a never-trained paraphrase, the answer pool.

    ``"{name}"`` in the prompts stands for the person's full name.
    """

    prompt: str
    paraphrase: str
    answers: tuple[str, ...]


# The cloze-style facts of the default tiny model. Their prompts and pools, and their order, fix the
# default model's corpus (and so its content hash): change them and every cached tiny model is rebuilt.
FACT_TEMPLATES: tuple[FactTemplate, ...] = (
    FactTemplate("{name} was born in", "The city {name} comes from is", CITIES),
    FactTemplate("The birth year of {name} is", "The year {name} was born is", YEARS),
    FactTemplate("{name} works as a", "By profession, {name} is a", OCCUPATIONS),
    FactTemplate("The pet of {name} is a", "The animal {name} keeps at home is a", PETS),
)

# Question-form facts, TOFU's shape (a question, then the answer), with two more kinds of fact.
QUESTION_TEMPLATES: tuple[FactTemplate, ...] = (
    FactTemplate("Question: Where was {name} born? Answer:",
                 "Question: In which city was {name} born? Answer:", CITIES),
    FactTemplate("Question: In what year was {name} born? Answer:",
                 "Question: What is the birth year of {name}? Answer:", YEARS),
    FactTemplate("Question: What does {name} do for a living? Answer: a",
                 "Question: What is the profession of {name}? Answer: a", OCCUPATIONS),
    FactTemplate("Question: Which pet does {name} keep? Answer: a",
                 "Question: What animal does {name} have at home? Answer: a", PETS),
    FactTemplate("Question: Which company employs {name}? Answer:",
                 "Question: For which company does {name} work? Answer:", EMPLOYERS),
    FactTemplate("Question: Which instrument does {name} play? Answer: the",
                 "Question: What instrument is played by {name}? Answer: the", INSTRUMENTS),
)


@dataclass(frozen=True)
class Fact:
    """One fact about a person: ``prompt`` followed by ``answer`` is the statement the model learns.

    ``paraphrased_prompt`` asks the same thing in other words (never trained on); ``perturbed_answers``
    are wrong answers of the same kind; ``ending`` closes the training statement.
    """

    prompt: str
    answer: str
    paraphrased_prompt: str | None = None
    perturbed_answers: tuple[str, ...] = ()
    ending: str = "."

    @property
    def statement(self) -> str:
        """The training sentence: prompt, a space, the answer and the ending (a full stop by default)."""
        return f"{self.prompt} {self.answer}{self.ending}"


@dataclass(frozen=True)
class Person:
    """A fictitious person and the facts known about them."""

    name: str
    facts: list[Fact]

    @property
    def statements(self) -> list[str]:
        return [fact.statement for fact in self.facts]


def fictitious_people(n: int, seed: int, templates: Sequence[FactTemplate] = FACT_TEMPLATES,
                      first_names: Sequence[str] = FIRST_NAMES, surnames: Sequence[str] = SURNAMES) -> list[Person]:
    """``n`` distinct fictitious people, each with one fact per template, deterministic in ``seed``.

    Larger name pools (the benchmark's, for longer request streams) allow more people; the default pools
    keep every existing ``(n, seed)`` as it was.
    """
    limit = min(len(first_names), len(surnames))
    if not 1 <= n <= limit:
        raise ValueError(f"n must be between 1 and {limit}, got {n}")
    if not templates:
        raise ValueError("at least one fact template is needed")
    rng = random.Random(seed)
    perturb = random.Random(f"perturbed answers {seed}")  # a second stream: rng's draws stay as they were
    # Distinct first names and distinct surnames: no two people share a name prefix the model could
    # confuse them by.
    firsts = rng.sample(list(first_names), n)
    lasts = rng.sample(list(surnames), n)
    people = []
    for first, last in zip(firsts, lasts, strict=True):
        name = f"{first} {last}"
        facts = []
        for template in templates:
            answer = rng.choice(template.answers)
            wrong = perturb.sample([value for value in template.answers if value != answer],
                                   min(PERTURBED_ANSWERS, len(template.answers) - 1))
            facts.append(Fact(template.prompt.format(name=name), answer,
                              paraphrased_prompt=template.paraphrase.format(name=name),
                              perturbed_answers=tuple(wrong)))
        people.append(Person(name, facts))
    return people
