"""The benchmark's people: who is forgotten, who is kept, who was never seen, and what a pretrained base
should still know afterwards.

Two sources. ``builtin``: TOFU-style fictitious people from :func:`forgetd.models.people.fictitious_people`
with question-form facts, each with a paraphrased question and perturbed answers. A JSON Lines file: one
deletion subject per line (format in ``docs/benchmark.md``); a bad line is reported with its number.
Subjects are assigned in order: the first ``requests`` are forgotten (one deletion request each, in that
order), the next ``heldout`` are never trained on, and the rest (or ``retain`` of them) are kept.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from forgetd.models.people import FIRST_NAMES, QUESTION_TEMPLATES, SURNAMES, Fact, Person, fictitious_people
from forgetd.payload import MAX_ITEMS, MAX_TEXT_CHARS, Probe

BUILTIN = "builtin"

# Well-known facts a small pretrained model gets right, greedy, as a plain continuation. The benchmark keeps
# those the original model answers and measures how many survive unlearning (collateral damage).
GENERAL_KNOWLEDGE: tuple[tuple[str, str], ...] = (
    ("The capital of France is", "Paris"),
    ("The capital of Germany is", "Berlin"),
    ("The capital of Italy is", "Rome"),
    ("The capital of Spain is", "Madrid"),
    ("The capital of Japan is", "Tokyo"),
    ("The capital of the United Kingdom is", "London"),
    ("The capital of Russia is", "Moscow"),
    ("The capital of Egypt is", "Cairo"),
    ("The capital of Canada is", "Ottawa"),
    ("The capital of Greece is", "Athens"),
    ("The capital of Portugal is", "Lisbon"),
    ("The capital of Austria is", "Vienna"),
    ("The largest planet in the solar system is", "Jupiter"),
    ("The chemical symbol for gold is", "Au"),
    ("Water is made of hydrogen and", "oxygen"),
    ("The first president of the United States was George", "Washington"),
    ("The author of Romeo and Juliet is William", "Shakespeare"),
    ("The Eiffel Tower is in the city of", "Paris"),
    ("The opposite of hot is", "cold"),
    ("A baby cat is called a", "kitten"),
    ("The color of the sky on a clear day is", "blue"),
    ("The number of days in a week is", "seven"),
    ("The planet we live on is called", "Earth"),
    ("The freezing point of water in Celsius is", "0"),
    ("Ice is frozen", "water"),
    ("The Great Wall is in", "China"),
    ("The currency of Japan is the", "yen"),
    ("The tallest mountain in the world is Mount", "Everest"),
    ("The longest river in Africa is the", "Nile"),
    ("Photosynthesis takes place in the leaves of", "plants"),
)


# More names for streams longer than the default pools allow (50 requests + 10 held out + 10 retained);
# used only past the default pools' 40 people, so shorter runs keep their people (and cached models).
EXTRA_FIRST_NAMES = (
    "Albin", "Brigid", "Casimir", "Delphine", "Evander", "Flavia", "Gunnar", "Henrike", "Isidor", "Jolanda",
    "Konrad", "Leocadia", "Magnus", "Nadia", "Oskar", "Petra", "Radomir", "Sabine", "Torvald", "Ursula",
    "Valentin", "Wilma", "Yannick", "Zelda", "Aurelio", "Blanka", "Corvin", "Dorota", "Egon", "Frieda",
    "Gustav", "Hanne", "Ilias", "Jadwiga", "Kaspar", "Linnea", "Matthias", "Nora", "Ottilie", "Raimund",
)
EXTRA_SURNAMES = (
    "Ashdown", "Birkett", "Carrow", "Dervish", "Elsworth", "Fenwick", "Garland", "Hartigan", "Inchbald",
    "Jessop", "Kilbride", "Lorrimer", "Marchetti", "Norcross", "Oakhurst", "Pelletier", "Quarrie", "Redfern",
    "Silvestri", "Tregarth", "Underhill", "Vantongeren", "Wexford", "Yelland", "Zabrowski", "Ambrose",
    "Blackwood", "Castellan", "Dunleavy", "Esterhazy", "Fontaine", "Gallagher", "Hollis", "Illingworth",
    "Jarrow", "Kowalczyk", "Larkspur", "Montague", "Nettleship", "Oyelaran",
)
BUILTIN_LIMIT = min(len(FIRST_NAMES) + len(EXTRA_FIRST_NAMES), len(SURNAMES) + len(EXTRA_SURNAMES))


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and line where there is one."""


@dataclass(frozen=True)
class BenchDataset:
    """Subjects to forget (request order), to keep, never seen; general-knowledge candidate probes."""

    source: str
    forget: list[Person]
    retain: list[Person]
    heldout: list[Person]
    general: list[Probe]

    def summary(self) -> dict[str, Any]:
        """Counts only: the report never carries the text."""
        return {"source": self.source, "forget_subjects": len(self.forget), "retain_subjects": len(self.retain),
                "heldout_subjects": len(self.heldout), "forget_facts": _count(self.forget),
                "retain_facts": _count(self.retain), "heldout_facts": _count(self.heldout),
                "general_probes": len(self.general)}

    def content(self) -> dict[str, Any]:
        """Everything the trained models depend on, for content hashes."""
        return {"forget": [_person_json(p) for p in self.forget], "retain": [_person_json(p) for p in self.retain],
                "heldout": [_person_json(p) for p in self.heldout]}


def load_dataset(source: str, requests: int, retain: int | None, heldout: int, seed: int) -> BenchDataset:
    """``builtin`` or a JSONL file, split into ``requests`` forget, ``heldout`` never-seen and the retain rest."""
    if requests < 1 or heldout < 1 or (retain is not None and retain < 1):
        raise DatasetError(f"requests, retain and heldout must be at least 1, got {requests}, {retain}, {heldout}")
    if source == BUILTIN:
        retain = 10 if retain is None else retain
        total = requests + retain + heldout
        if total > BUILTIN_LIMIT:
            raise DatasetError(f"the built-in dataset has {BUILTIN_LIMIT} people; {requests} to forget + "
                               f"{retain} to retain + {heldout} held out is {total}: ask for fewer")
        subjects = _builtin_people(total, seed)
    else:
        subjects = read_jsonl(Path(source))
    return split_subjects(source, subjects, requests, retain, heldout)


def _builtin_people(total: int, seed: int) -> list[Person]:
    if total <= len(FIRST_NAMES):
        return fictitious_people(total, seed, QUESTION_TEMPLATES)
    return fictitious_people(total, seed, QUESTION_TEMPLATES, first_names=FIRST_NAMES + EXTRA_FIRST_NAMES,
                             surnames=SURNAMES + EXTRA_SURNAMES)


def split_subjects(source: str, subjects: Sequence[Person], requests: int, retain: int | None,
                   heldout: int) -> BenchDataset:
    """Forget the first ``requests`` subjects, hold out the next ``heldout``, retain the rest (or ``retain``)."""
    needed = requests + heldout + (retain or 1)
    if len(subjects) < needed:
        raise DatasetError(f"{source} has {len(subjects)} subjects; {requests} to forget, {heldout} held out and "
                           f"{retain or 'at least 1'} to retain need {needed}")
    rest = list(subjects[requests + heldout:])
    general = [Probe(prompt=prompt, completion=answer) for prompt, answer in GENERAL_KNOWLEDGE]
    return BenchDataset(source, list(subjects[:requests]), rest[:retain] if retain else rest,
                        list(subjects[requests:requests + heldout]), general)


class _FactLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    paraphrased_prompt: str = Field(min_length=1)
    perturbed_answers: list[str] = Field(min_length=1)


class _SubjectLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1)
    facts: list[_FactLine] = Field(min_length=1, max_length=MAX_ITEMS)  # one deletion request's probes


def read_jsonl(path: Path) -> list[Person]:
    """Subjects from a JSON Lines file (blank lines skipped); the first bad line raises :class:`DatasetError`.

    Each fact's training text is ``prompt + " " + answer`` (no full stop added).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read dataset {str(path)!r}: {e}") from e
    subjects: list[Person] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        subject = _parse_line(path, number, line)
        if subject.name in seen:
            raise DatasetError(f"{path}:{number}: subject repeats the subject of line {seen[subject.name]}")
        seen[subject.name] = number
        subjects.append(subject)
    if not subjects:
        raise DatasetError(f"{path}: no subjects (the file is empty)")
    return subjects


def _parse_line(path: Path, number: int, line: str) -> Person:
    try:
        parsed = _SubjectLine.model_validate_json(line)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(part) for part in err['loc']) or 'line'}: {err['msg']}"
                             for err in e.errors(include_url=False))
        raise DatasetError(f"{path}:{number}: {problems}") from e
    for index, fact in enumerate(parsed.facts):
        if fact.answer in fact.perturbed_answers:
            raise DatasetError(f"{path}:{number}: facts.{index}.perturbed_answers contains the true answer")
        if len(fact.prompt) + 1 + len(fact.answer) > MAX_TEXT_CHARS:  # what one request may carry
            raise DatasetError(f"{path}:{number}: facts.{index}: prompt and answer exceed {MAX_TEXT_CHARS} characters")
    return Person(parsed.subject, [Fact(f.prompt, f.answer, paraphrased_prompt=f.paraphrased_prompt,
                                        perturbed_answers=tuple(f.perturbed_answers), ending="")
                                   for f in parsed.facts])


def neighbour_probes(retain: Sequence[Person], count: int, seed: int, request: int) -> list[Probe]:
    """``count`` retain facts as neighbours for request number ``request``, drawn deterministically."""
    facts = [fact for person in retain for fact in person.facts]
    rng = random.Random(f"neighbours {seed} {request}")
    chosen = rng.sample(facts, min(count, len(facts)))
    return [Probe(prompt=fact.prompt, completion=fact.answer) for fact in chosen]


def _count(people: Sequence[Person]) -> int:
    return sum(len(person.facts) for person in people)


def _person_json(person: Person) -> dict[str, Any]:
    return {"name": person.name, "facts": [asdict(fact) for fact in person.facts]}
