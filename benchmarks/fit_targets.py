"""Is a forget-quality miss fit's targets' or its training's? The truth ratios of fit's targets themselves.

fit distils each forgotten answer towards the reference's prediction with the subject read as a stranger
(:mod:`forgetd.unlearning.counterfactual`). Forget quality is the KS test of the forgotten facts' truth
ratios against gold's, so three questions decide where a miss comes from:

1. Would a model that reached every target exactly pass? The targets' own truth ratios (the original
   model, each forgotten person's name read as their stranger) against gold's.
2. Where does a trained lineage part from its targets? Each saved version's truth ratios against both,
   and per group of requests (in request order, a group per batch) the mean per-token NLL of the true
   and of the perturbed answers, so that a batch that stopped short or drifted back shows by itself.
3. Where do the targets part from gold? Every answer's per-token NLL by what the original was taught
   about its value: the first token by whether it starts a value a retained person holds (gold's answer
   prior), the later tokens by who holds the value (retained, forgotten people only, nobody).

The targets here are those of a first update from the original; later updates read a lineage's current
version instead, which has forgotten the earlier requests already. The cached original and gold models
of a ``forgetd bench --cache DIR`` run are reused (built if missing), and the versions are that run's
``--out``'s ``adapters/fit``:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fit_targets.py --seed 0 --cache CACHE \\
        --adapters OUT/adapters/fit --versions v4,v7 --group 8
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.bench.data import BUILTIN, BenchDataset, load_dataset
from forgetd.bench.evaluate import name_tokens
from forgetd.bench.models import prepare_models
from forgetd.eval.encoding import IGNORE_INDEX, EncodedBatch, encode_probes
from forgetd.eval.forget_quality import ks_pvalue
from forgetd.eval.likelihood import forward_logits, label_nll
from forgetd.eval.lm import CausalLM
from forgetd.eval.truth_ratio import MAX_PROBE_TOKENS, answer_probes, per_fact, ratio_from_nll
from forgetd.models.loading import load_model
from forgetd.models.people import Person
from forgetd.models.resolve import TINY
from forgetd.payload import Probe
from forgetd.unlearning.adapters import attach_adapter
from forgetd.unlearning.config import UnlearningConfig
from forgetd.unlearning.counterfactual import Strangers
from forgetd.unlearning.methods.fit import STRANGER_SEED

Logits = Callable[[EncodedBatch], torch.Tensor]  # [B, T, V] of a batch of one person's probes


@dataclass(frozen=True)
class AnswerTokens:
    """One answer to a fact's prompt: its token ids and each token's NLL given the prompt and the tokens before."""

    value: str
    ids: list[int]
    nll: list[float]

    @property
    def mean_nll(self) -> float:
        return statistics.fmean(self.nll)


@dataclass(frozen=True)
class FactNLL:
    """One fact: its true answer's tokens, then each perturbed answer's."""

    true: AnswerTokens
    perturbed: list[AnswerTokens]

    @property
    def truth_ratio(self) -> float:
        return ratio_from_nll(self.true.mean_nll, [self.perturbed_nll])

    @property
    def perturbed_nll(self) -> float:
        return statistics.fmean(answer.mean_nll for answer in self.perturbed)


def main() -> None:
    args = _arguments()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    data = load_dataset(BUILTIN, args.requests, args.retain, args.heldout, args.seed)
    prepared = prepare_models(TINY, data, args.seed, args.cache, args.cache, device, print)
    original = load_model(prepared.original, device)
    gold = load_model(prepared.gold, device)
    tokenizer, config = original.tokenizer, UnlearningConfig()
    first_update = attach_adapter(original.model, None, config).eval()  # as fit's first update reads the original
    rows = {"target": _answer_nlls(_stranger_logits(first_update, tokenizer), tokenizer, data.forget),
            "gold": _answer_nlls(_plain_logits(gold.model), tokenizer, data.forget)}
    for version in args.versions:
        lineage = attach_adapter(load_model(prepared.original, device).model, args.adapters / version, config).eval()
        rows[version] = _answer_nlls(_plain_logits(lineage), tokenizer, data.forget)
    _print_ratios(rows)
    _print_groups(rows, args.group)
    _print_holders(rows, tokenizer, data)
    print(f"\nrerun: OMP_NUM_THREADS={args.threads} .venv/bin/python {shlex.join(sys.argv)}")


def _stranger_logits(model: PeftModel, tokenizer: PreTrainedTokenizerBase) -> Callable[[Person], Logits]:
    """The original's logits with the person's name tokens read as their strangers (fit's targets)."""
    def for_person(person: Person) -> Logits:
        ids = torch.tensor(sorted(name_tokens(tokenizer, person.name)))
        strangers = Strangers(model, ids, STRANGER_SEED)

        def logits(batch: EncodedBatch) -> torch.Tensor:
            prompt = (batch.labels == IGNORE_INDEX) & batch.attention_mask.bool()
            return strangers.forward(model, batch, prompt & torch.isin(batch.input_ids, ids))
        return logits
    return for_person


def _plain_logits(model: CausalLM) -> Callable[[Person], Logits]:
    return lambda _person: lambda batch: forward_logits(model, batch)


@torch.no_grad()
def _answer_nlls(logits_for: Callable[[Person], Logits], tokenizer: PreTrainedTokenizerBase,
                 people: Sequence[Person]) -> list[list[FactNLL]]:
    """Per person, per fact: every answer's tokens and their NLLs, as the truth ratio reads them."""
    out = []
    for person in people:
        probes = answer_probes(person.facts)
        batch = encode_probes(tokenizer, probes, MAX_PROBE_TOKENS)
        nll, mask = label_nll(logits_for(person)(batch), batch.labels)
        labels = batch.labels[:, 1:]
        answers = [AnswerTokens(probe.completion, labels[row][mask[row]].tolist(), nll[row][mask[row]].tolist())
                   for row, probe in enumerate(probes)]
        out.append([FactNLL(true, wrong) for true, wrong in per_fact(person.facts, answers)])
    return out


def _print_ratios(rows: dict[str, list[list[FactNLL]]]) -> None:
    ratios = {name: [fact.truth_ratio for person in people for fact in person] for name, people in rows.items()}
    print("\n| model | truth ratio, median | KS p vs gold | KS p vs target |\n| --- | ---: | ---: | ---: |")
    for name, values in ratios.items():
        print(f"| {name} | {statistics.median(values):.3f} | {ks_pvalue(values, ratios['gold']):.4f} "
              f"| {ks_pvalue(values, ratios['target']):.4f} |")


def _print_groups(rows: dict[str, list[list[FactNLL]]], size: int) -> None:
    """Mean per-token NLL of the true / perturbed answers per group of ``size`` requests."""
    count = len(rows["target"])
    starts = range(0, count, size)
    print("\nper-token NLL, true / perturbed answers, by request group\n")
    print("| model | " + " | ".join(f"{s + 1}-{min(s + size, count)}" for s in starts) + " |")
    print("| --- |" + " ---: |" * len(starts))
    for name, people in rows.items():
        cells = []
        for start in starts:
            facts = [fact for person in people[start:start + size] for fact in person]
            cells.append(f"{statistics.fmean(f.true.mean_nll for f in facts):.2f} / "
                         f"{statistics.fmean(f.perturbed_nll for f in facts):.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def _print_holders(rows: dict[str, list[list[FactNLL]]], tokenizer: PreTrainedTokenizerBase,
                   data: BenchDataset) -> None:
    """Mean per-token NLL of every answer (true and perturbed) by what the model was taught about its value.

    The answer's first token, by whether it starts a value some retained person holds (gold's prior
    favours those); its later tokens, by who holds the value: a retained person, forgotten people only,
    or nobody the original was taught (a value seen only in the catalogue)."""
    retained = {fact.answer for person in data.retain for fact in person.facts}
    forgotten = {fact.answer for person in data.forget for fact in person.facts} - retained
    retained_starts = {ids[0] for ids in _completion_ids(tokenizer, data.retain)}
    columns = ("first token, starts a retained value", "first token, other",
               "later tokens, retained value", "later tokens, forgotten only", "later tokens, nobody's")

    def column(answer: AnswerTokens) -> tuple[str, ...]:
        first = columns[0] if answer.ids[0] in retained_starts else columns[1]
        held = columns[2] if answer.value in retained else columns[3] if answer.value in forgotten else columns[4]
        return (first,) + (held,) * (len(answer.ids) - 1)

    print("\nper-token NLL of every answer (true and perturbed) by what was taught about its value "
          "(tokens counted in brackets)\n")
    print("| model | " + " | ".join(columns) + " |\n| --- |" + " ---: |" * len(columns))
    for name, people in rows.items():
        cells: dict[str, list[float]] = {key: [] for key in columns}
        for fact in (fact for person in people for fact in person):
            for answer in (fact.true, *fact.perturbed):
                for key, nll in zip(column(answer), answer.nll, strict=True):
                    cells[key].append(nll)
        print(f"| {name} | " + " | ".join(
            f"{statistics.fmean(cells[key]):.2f} ({len(cells[key])})" if cells[key] else "-" for key in columns) + " |")


def _completion_ids(tokenizer: PreTrainedTokenizerBase, people: Sequence[Person]) -> list[list[int]]:
    """Each true answer's token ids as a probe encodes them after its prompt."""
    probes = [Probe(prompt=fact.prompt, completion=fact.answer) for person in people for fact in person.facts]
    batch = encode_probes(tokenizer, probes, MAX_PROBE_TOKENS)
    return [row[row != IGNORE_INDEX].tolist() for row in batch.labels]


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="the bench run's --seed (its data split)")
    parser.add_argument("--cache", type=Path, required=True, help="the bench run's --cache")
    parser.add_argument("--adapters", type=Path, help="a bench run's OUT/adapters/fit")
    parser.add_argument("--versions", type=lambda text: [v for v in text.split(",") if v], default=[],
                        help="comma-separated versions in --adapters, e.g. v4,v7")
    parser.add_argument("--requests", type=int, default=50, help="the bench run's --requests")
    parser.add_argument("--heldout", type=int, default=10, help="the bench run's never-seen subjects")
    parser.add_argument("--retain", type=int, help="the bench run's --retain (default: the bench's)")
    parser.add_argument("--group", type=int, default=8, help="requests per group (the run's batch size)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    if args.versions and args.adapters is None:
        parser.error("--versions needs --adapters")
    missing = [version for version in args.versions if not (args.adapters / version).is_dir()]
    if missing:
        parser.error(f"no adapter folder {', '.join(missing)} in {args.adapters}")
    return args


if __name__ == "__main__":
    main()
