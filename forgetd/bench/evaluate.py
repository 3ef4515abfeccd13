"""Every benchmark metric of one model, from the metric modules in :mod:`forgetd.eval`.

Raw measurements live in :class:`ModelEval`; scores relative to the original and gold models (efficacy,
utility, forget quality) are formed from two of them in :func:`method_scores`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from transformers import PreTrainedTokenizerBase

from forgetd.bench.data import BenchDataset
from forgetd.eval.efficacy import forget_efficacy, relative_to_original
from forgetd.eval.extraction import extraction_strength
from forgetd.eval.fact_recall import FactRecall, fact_recall
from forgetd.eval.forget_quality import forget_quality
from forgetd.eval.lm import CausalLM
from forgetd.eval.mia import MinKEvidence, min_k_evidence, roc_auc
from forgetd.eval.perplexity import perplexity, perplexity_ratio
from forgetd.eval.probes import probe_hits, probe_recall
from forgetd.eval.quantization import QuantScheme, quantized_copy
from forgetd.eval.relearn import RelearnAttack, RelearnResult, relearn_recovery
from forgetd.eval.truth_ratio import truth_ratios
from forgetd.models.people import Fact, Person
from forgetd.payload import Probe

T = TypeVar("T")
GeneralMetric = Literal["heldout_perplexity_ratio", "general_knowledge_recall"]


@dataclass(frozen=True)
class ModelEval:
    """One model's raw measurements on the benchmark's data."""

    forget: FactRecall
    retain: FactRecall
    general_value: float  # held-out perplexity (tiny base) or general-knowledge recall (pretrained base)
    truth_ratios: list[float]
    mia_forget: MinKEvidence  # the forgotten statements' Min-K% scores, names apart from the rest
    mia_heldout: MinKEvidence  # the same of the never-seen subjects' statements
    extraction_strength: float
    relearn: RelearnResult
    quantized_forget_recall: float

    @property
    def mia_auc(self) -> float:
        """Min-K% membership AUC of the forgotten statements against the never-seen ones."""
        return roc_auc(self.mia_forget.scores, self.mia_heldout.scores)


@dataclass(frozen=True)
class CurvePoint:
    """Scores after a number of requests: forgetting of the requests so far, retain utility, and what the
    version still knows of the people not yet requested (None once every subject has been requested)."""

    requests: int
    forget_recall: float
    forget_efficacy: float
    retain_recall: float
    retain_utility: float
    bystander_recall: float | None = None
    bystander_utility: float | None = None


class Evaluator:
    """Measures models on one dataset; the original model's evaluation is the reference of the others."""

    def __init__(self, data: BenchDataset, tokenizer: PreTrainedTokenizerBase, pretrained: bool,
                 relearn: RelearnAttack, quant_scheme: QuantScheme, progress: Callable[[str], None]) -> None:
        self.data = data
        self.tokenizer = tokenizer
        self.general_metric: GeneralMetric = "general_knowledge_recall" if pretrained else "heldout_perplexity_ratio"
        self.relearn_attack = relearn
        self.quant_scheme = quant_scheme
        self.progress = progress
        self.forget_facts = _facts(data.forget)
        self.retain_facts = _facts(data.retain)
        self.relearn_texts, self.held_back = relearn_split(data.forget)
        self.general_probes: list[Probe] = list(data.general)
        self.original: ModelEval | None = None

    def evaluate_original(self, model: CausalLM) -> ModelEval:
        """Evaluate the original model, keeping only the general-knowledge probes it answers."""
        if self.general_metric == "general_knowledge_recall":
            hits = probe_hits(model, self.tokenizer, self.general_probes)
            kept = [probe for probe, hit in zip(self.general_probes, hits, strict=True) if hit]
            if not kept:  # a base that knows none of them: fall back to held-out perplexity
                self.progress("general knowledge: the original answers no probe; using held-out perplexity")
                self.general_metric = "heldout_perplexity_ratio"
            self.general_probes = kept
            self.progress(f"general knowledge: the original answers {len(kept)} of {len(hits)} probes")
        self.original = self.evaluate("original", model)
        return self.original

    def evaluate(self, name: str, model: CausalLM) -> ModelEval:
        """Every metric of ``model``, a progress line per metric."""
        step = _Steps(self.progress, name)
        forget = step("forget recall (prompt and paraphrase)", lambda: fact_recall(model, self.tokenizer,
                                                                                     self.forget_facts))
        retain = step("retain recall", lambda: fact_recall(model, self.tokenizer, self.retain_facts))
        general = step(self.general_metric.replace("_", " "), lambda: self._general(model))
        ratios = step("truth ratios", lambda: truth_ratios(model, self.tokenizer, self.forget_facts))
        membership = step("Min-K% membership evidence", lambda: (self._min_k(model, self.data.forget),
                                                                self._min_k(model, self.data.heldout)))
        strength = step("extraction strength", lambda: extraction_strength(
            model, self.tokenizer, [Probe(prompt=f.prompt, completion=f.answer) for f in self.forget_facts]))
        relearn = step("relearning attack", lambda: relearn_recovery(model, self.tokenizer, self.relearn_texts,
                                                                     self.held_back, self.relearn_attack))
        quantized = step(f"{self.quant_scheme} quantisation", lambda: self._quantized_recall(model))
        return ModelEval(forget, retain, general, ratios, *membership, strength, relearn, quantized)

    def curve_point(self, model: CausalLM, requests: int) -> CurvePoint:
        """Forget efficacy on the first ``requests`` subjects and retain utility, against the original."""
        if self.original is None:
            raise RuntimeError("evaluate the original model first: curves are relative to it")
        count = sum(len(person.facts) for person in self.data.forget[:requests])
        hits = fact_recall(model, self.tokenizer, self.forget_facts).hits
        forget, original_forget = _share(hits[:count]), _share(self.original.forget.hits[:count])
        retain = fact_recall(model, self.tokenizer, self.retain_facts).recall
        bystander = _share(hits[count:]) if count < len(hits) else None
        return CurvePoint(requests, forget, forget_efficacy(forget, original_forget), retain,
                          relative_to_original(retain, self.original.retain.recall), bystander,
                          None if bystander is None
                          else relative_to_original(bystander, _share(self.original.forget.hits[count:])))

    def _min_k(self, model: CausalLM, people: Sequence[Person]) -> MinKEvidence:
        return statements_min_k(model, self.tokenizer, people)

    def _general(self, model: CausalLM) -> float:
        if self.general_metric == "general_knowledge_recall":
            return probe_recall(model, self.tokenizer, self.general_probes)
        return perplexity(model, self.tokenizer, _statements(self.data.heldout))

    def _quantized_recall(self, model: CausalLM) -> float:
        quantized = quantized_copy(model, self.quant_scheme)
        try:
            return fact_recall(quantized, self.tokenizer, self.forget_facts).recall
        finally:
            del quantized


def method_scores(ev: ModelEval, original: ModelEval, gold: ModelEval,
                  general_metric: GeneralMetric) -> dict[str, Any]:
    """The report's metrics of one model, relative to the original and gold models where defined."""
    if general_metric == "heldout_perplexity_ratio":
        general_utility = perplexity_ratio(ev.general_value, original.general_value)
    else:
        general_utility = relative_to_original(ev.general_value, original.general_value)
    return {
        "forget_recall": ev.forget.recall,
        "forget_recall_prompt": ev.forget.prompt_recall,
        "forget_recall_paraphrase": ev.forget.paraphrase_recall,
        "forget_efficacy": forget_efficacy(ev.forget.recall, original.forget.recall),
        "retain_recall": ev.retain.recall,
        "retain_utility": relative_to_original(ev.retain.recall, original.retain.recall),
        "general_utility": general_utility,
        "general_metric": general_metric,
        "general_value": ev.general_value,
        "forget_quality": forget_quality(ev.truth_ratios, gold.truth_ratios),
        "truth_ratio_median": _median(ev.truth_ratios),
        "mia_auc": ev.mia_auc,
        "mia_auc_gold": gold.mia_auc,
        "mia_name_gap": ev.mia_forget.name_nll - ev.mia_heldout.name_nll,
        "mia_name_gap_gold": gold.mia_forget.name_nll - gold.mia_heldout.name_nll,
        "mia_other_gap": ev.mia_forget.other_nll - ev.mia_heldout.other_nll,
        "mia_other_gap_gold": gold.mia_forget.other_nll - gold.mia_heldout.other_nll,
        "extraction_strength": ev.extraction_strength,
        "relearn_recovery": ev.relearn.recall_after,
        "relearn_recall_before": ev.relearn.recall_before,
        "relearn_recovery_gold": gold.relearn.recall_after,
        "quant_forget_recall": ev.quantized_forget_recall,
        "quant_recovery": ev.quantized_forget_recall - ev.forget.recall,
    }


def bystander_utility(curve: Sequence[CurvePoint]) -> float | None:
    """The mean over a stream's versions of what each still knows of the people not yet requested, relative
    to the original: the collateral forgetting a served version inflicts on people nobody asked to forget,
    which retain utility cannot show (the retain subjects are the very data the update protects)."""
    values = [point.bystander_utility for point in curve if point.bystander_utility is not None]
    return sum(values) / len(values) if values else None


def relearn_split(forget: Sequence[Person]) -> tuple[list[str], list[Fact]]:
    """Each subject's even-numbered facts to relearn (as statements), the odd-numbered ones held back."""
    train = [fact.statement for person in forget for fact in person.facts[0::2]]
    held = [fact for person in forget for fact in person.facts[1::2]]
    if not held:  # one fact per subject: alternate over subjects instead
        facts = _facts(forget)
        train, held = [fact.statement for fact in facts[0::2]], facts[1::2]
    if not held or not train:
        raise ValueError("the relearning attack needs at least two forget facts")
    return train, held


class _Steps:
    def __init__(self, progress: Callable[[str], None], name: str) -> None:
        self.progress, self.name = progress, name

    def __call__(self, label: str, work: Callable[[], T]) -> T:
        self.progress(f"{self.name}: {label}")
        return work()


def _facts(people: Sequence[Person]) -> list[Fact]:
    return [fact for person in people for fact in person.facts]


def statements_min_k(model: CausalLM, tokenizer: PreTrainedTokenizerBase, people: Sequence[Person]) -> MinKEvidence:
    """The Min-K% evidence of ``people``'s statements, each with its subject's name tokens apart."""
    names = [name_tokens(tokenizer, person.name) for person in people for _ in person.statements]
    return min_k_evidence(model, tokenizer, _statements(people), names)


def name_tokens(tokenizer: PreTrainedTokenizerBase, name: str) -> set[int]:
    """The token ids of a name, opening a sentence or following a word."""
    return {token for text in (name, " " + name) for token in tokenizer(text, add_special_tokens=False)["input_ids"]}


def _statements(people: Sequence[Person]) -> list[str]:
    return [statement for person in people for statement in person.statements]


def _share(hits: Sequence[bool]) -> float:
    return sum(hits) / len(hits)


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
