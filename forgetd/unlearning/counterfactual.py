"""What the model would predict had it never seen the subject of a deletion request: fit's targets.

A model retrained without a person (the gold standard of unlearning) still knows every word of the
person's name and every possible answer; what it lacks is any association between them. Its answers
about the person are its guesses about a stranger, and the name itself is, in a question, as unexpected
as any name it never read in one. The reference model can be asked the same questions about a stranger:
replace the input embeddings of the subject's tokens by vectors it has never seen (one random vector per
token id, drawn from the embedding matrix's own per-dimension mean and spread, so a subject stays the same
stranger in every sentence and in every later update that replays it) and read its next-token
distributions. Those are the targets, with one change: wherever the subject's own tokens could come next
(the name, read in a question), their logits are the scores the model gives the strangers' vectors as
output tokens (``h . r``): as likely as an unfamiliar token is there.

Which tokens are the subject is read off the batch itself (:func:`subject_token_sets`): the tokens a
request's probe prompts share, minus anything retained knowledge or other requests also contain.

The other side of the same coin: a model that never saw the person still answers the same questions about
everyone else exactly as before. :func:`transplanted_questions` asks every forget question about other
subjects: those of the retain probes (:func:`retained_subjects`: a retain prompt that is a forget question
with another subject) and those the base model names in the question's subject slot
(:func:`known_subjects`: who it knows about), so that fit can hold the reference's answers there. Without
them, the cheapest way to forget a few people is to forget a little about everyone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from peft import PeftModel

from forgetd.eval.encoding import IGNORE_INDEX, EncodedBatch, concat_batches
from forgetd.eval.lm import eval_mode
from forgetd.unlearning.inputs import REFERENCE_BATCH

SEED_STRIDE = 1_000_003  # a prime larger than any vocabulary: (seed, token id) pairs never collide


@dataclass(frozen=True)
class AnswerTargets:
    """Prompts and the reference's top-k distribution of the token that follows each."""

    prompts: EncodedBatch  # right-padded, no labels
    indices: torch.Tensor  # [N, k]
    probs: torch.Tensor  # [N, k] the reference's probabilities of the k tokens (the rest is one bucket)

    def __len__(self) -> int:
        return len(self.prompts)

    @staticmethod
    def concat(parts: Sequence[AnswerTargets]) -> AnswerTargets:
        return AnswerTargets(concat_batches([p.prompts for p in parts]), torch.cat([p.indices for p in parts]),
                             torch.cat([p.probs for p in parts]))


@dataclass(frozen=True)
class Targets:
    """Top-k target distributions of every forget sequence, and the forgotten labels' own target."""

    indices: torch.Tensor  # [N, T-1, k] token ids (the label is always among them where it is forgotten)
    probs: torch.Tensor  # [N, T-1, k] target probabilities of the k tokens (the rest is one bucket)
    forgotten: torch.Tensor  # [N, T-1] bool: the label must take its counterfactual likelihood
    label_logprob: torch.Tensor  # [N, T-1] the label's counterfactual log-probability (0 where unlabelled)
    reproduced: torch.Tensor  # [N] bool: the counterfactual still reproduces a probe row's completion greedily

    @staticmethod
    def gathered(parts: Sequence[tuple[torch.Tensor, Targets]]) -> Targets:
        """The targets of rows ``0..N-1`` from parts that each hold some of them (``[M]`` row numbers, and those
        rows' targets, in the same order and width); together the parts hold every row once."""
        order = torch.argsort(torch.cat([rows for rows, _ in parts]))
        return Targets(*(torch.cat([getattr(part, field.name) for _, part in parts])[order]
                         for field in fields(Targets)))

    def with_rows(self, rows: torch.Tensor, replacement: Targets) -> Targets:
        """These targets with ``rows`` (``[M]`` row numbers) taken from ``replacement`` (the targets of those
        rows alone, in the same order and width)."""
        return Targets(*(getattr(self, field.name).index_copy(0, rows, getattr(replacement, field.name))
                         for field in fields(self)))


def subject_token_sets(groups: Sequence[Sequence[Sequence[int]]], retained: set[int]) -> list[set[int]]:
    """For each group of probe prompts (token ids; one group per request), the tokens that name its subject.

    A subject token is in at least half the prompts of its group (the name recurs in the questions about
    the person, the question words do not; half, because a name that opens one sentence and follows a word
    in the next is two different tokens), in no retained sequence, and in no other group's prompts
    (question templates recur across requests; a name does not).
    """
    per_group = [[set(prompt) for prompt in prompts] for prompts in groups]
    shared = [_in_half(prompts) for prompts in per_group]
    everywhere = [set().union(*prompts) for prompts in per_group]
    subjects = []
    for index, common in enumerate(shared):
        elsewhere = set().union(*(tokens for other, tokens in enumerate(everywhere) if other != index))
        subjects.append(common - retained - elsewhere)
    return subjects


class Template(NamedTuple):
    """A forget question around its subject: ``prefix + subject + suffix``, the subject ``length`` tokens."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    length: int

    def ask(self, subject: Sequence[int]) -> list[int]:
        return [*self.prefix, *subject, *self.suffix]


def _in_half(prompts: list[set[int]]) -> set[int]:
    counts = Counter(token for prompt in prompts for token in prompt)
    return {token for token, count in counts.items() if 2 * count >= len(prompts)}


def question_templates(questions: Sequence[Sequence[int]], subjects: Sequence[Sequence[bool]]) -> set[Template]:
    """The templates of the forget questions (token ids) whose subject (mask) is one contiguous span."""
    templates = set()
    for question, subject in zip(questions, subjects, strict=True):
        positions = [i for i, flag in enumerate(subject) if flag]
        if positions and positions[-1] - positions[0] + 1 == len(positions):
            templates.add(Template(tuple(question[:positions[0]]), tuple(question[positions[-1] + 1:]),
                                   len(positions)))
    return templates


def retained_subjects(templates: set[Template], retained: Sequence[Sequence[int]]) -> set[tuple[int, ...]]:
    """Subjects of retained prompts: the middle of a retained prompt that has a template's prefix and suffix."""
    found = set()
    for prompt in map(tuple, retained):
        for template in templates:
            end = len(prompt) - len(template.suffix)
            if end > len(template.prefix) and prompt[:len(template.prefix)] == template.prefix \
                    and prompt[end:] == template.suffix:
                found.add(prompt[len(template.prefix):end])
    return found


@torch.no_grad()
def known_subjects(model: PeftModel, templates: set[Template], excluded: torch.Tensor,
                   count: int) -> set[tuple[int, ...]]:
    """Subjects the reference itself expects in each template's subject slot: its ``count`` likeliest first
    tokens, each continued greedily to the template's subject length, never through an ``excluded`` token.

    What a model names in a question's subject slot is who it knows about; these are the people whose
    answers an update must not move, found without any list of them.
    """
    found: set[tuple[int, ...]] = set()
    if count == 0:
        return found
    with eval_mode(model):
        for template in sorted(templates):
            rows = _padded([template.prefix], model.device)
            first = _masked_next(model, rows, excluded).topk(min(count, _vocab(model))).indices[0]  # [count]
            spans = _continued(model, template.prefix, first.unsqueeze(-1), template.length - 1, excluded)
            found.update(tuple(span) for span in spans.tolist())
    return found


@torch.no_grad()
def whole_names(model: PeftModel, templates: set[Template], subjects: set[tuple[int, ...]],
                overrun: int) -> dict[tuple[int, ...], set[tuple[int, ...]]]:
    """For each subject, how the model goes on from its first token in each template of its length, to
    ``overrun`` tokens past the subject's length, nothing excluded.

    :func:`known_subjects` never continues through an excluded token, so one person's first name may come out
    joined to another word ("Yusuf" with anything but "Whitlock"): this is the name the model reads that
    first token as the start of."""
    names: dict[tuple[int, ...], set[tuple[int, ...]]] = {subject: set() for subject in subjects}
    nothing = torch.empty(0, dtype=torch.long, device=model.device)
    with eval_mode(model):
        for template in sorted(templates):
            fitting = sorted(subject for subject in subjects if len(subject) == template.length)
            if not fitting:
                continue
            firsts = torch.tensor([[subject[0]] for subject in fitting], device=model.device)
            spans = _continued(model, template.prefix, firsts, template.length - 1 + overrun, nothing)
            for subject, span in zip(fitting, spans.tolist(), strict=True):
                names[subject].add(tuple(span))
    return names


def _continued(model: PeftModel, prefix: Sequence[int], spans: torch.Tensor, steps: int,
               excluded: torch.Tensor) -> torch.Tensor:
    """``spans`` (``[n, s]`` token ids after ``prefix``) each continued greedily by ``steps`` tokens, never
    through an ``excluded`` one: ``[n, s + steps]``."""
    for _ in range(steps):
        prompts = _padded([[*prefix, *span] for span in spans.tolist()], model.device)
        spans = torch.cat([spans, _masked_next(model, prompts, excluded).argmax(-1, keepdim=True)], dim=-1)
    return spans


def transplanted_questions(templates: set[Template], subjects: set[tuple[int, ...]]) -> list[list[int]]:
    """Every template asked about every subject of its length (token ids), in a fixed order."""
    return [template.ask(subject) for template in sorted(templates) for subject in sorted(subjects)
            if len(subject) == template.length]


@torch.no_grad()
def answer_targets(model: PeftModel, prompts: Sequence[Sequence[int]], k: int) -> AnswerTargets:
    """The reference's top-k next-token distribution after each prompt (token ids)."""
    batch = _padded(prompts, model.device)
    tops = []
    with eval_mode(model):
        for chunk in batch.chunks(REFERENCE_BATCH):
            tops.append(last_logprobs(model, chunk).topk(k, dim=-1))
    return AnswerTargets(batch, torch.cat([t.indices for t in tops]), torch.cat([t.values for t in tops]).exp())


def top_k_cross_entropy(logprobs: torch.Tensor, indices: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy ``[...]`` of log-distributions ``[..., V]`` against top-k targets (``indices``, ``probs``
    ``[..., k]``) whose remaining mass is one bucket, matched by the model's mass outside the k tokens.

    Renormalising the k tokens instead sets every other token's target to zero, and each update pushes
    down whatever its reference found unlikely: on a stream of 50 updates at batch size 1, each the
    reference of the next, the names of people never seen went from 10.4 to 11.2 nats in their statements
    (9.8 with the bucket), and membership inference told them from the forgotten people by it."""
    kept = logprobs.gather(-1, indices)
    rest = (1.0 - probs.sum(-1)).clamp(min=0.0)
    # log(1 - sum of the k probabilities), kept finite where the k tokens hold (nearly) all the mass
    outside = torch.log(-torch.expm1(kept.logsumexp(-1).clamp(max=-1e-6)))
    return -(probs * kept).sum(-1) - rest * outside


def _padded(prompts: Sequence[Sequence[int]], device: torch.device) -> EncodedBatch:
    width = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), width), dtype=torch.long)  # padding is masked: its id does not matter
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, :len(prompt)], mask[row, :len(prompt)] = torch.tensor(list(prompt)), 1
    return EncodedBatch(ids, mask, torch.full_like(ids, IGNORE_INDEX)).to(device)


def _masked_next(model: PeftModel, prompts: EncodedBatch, excluded: torch.Tensor) -> torch.Tensor:
    logprobs = last_logprobs(model, prompts)
    logprobs[:, excluded] = float("-inf")
    return logprobs


def _vocab(model: PeftModel) -> int:
    return int(model.get_output_embeddings().weight.shape[0])


def last_logprobs(model: PeftModel, prompts: EncodedBatch) -> torch.Tensor:
    """``[B, V]`` log-distribution of the token after each (right-padded) prompt."""
    logits = model(input_ids=prompts.input_ids, attention_mask=prompts.attention_mask).logits  # [B, T, V]
    last = prompts.attention_mask.sum(-1) - 1
    return torch.log_softmax(logits[torch.arange(len(prompts), device=logits.device), last].float(), dim=-1)


def unfamiliar_vectors(weight: torch.Tensor, token_ids: torch.Tensor, seed: int) -> torch.Tensor:
    """One vector per token id that no training ever saw, ``[n, H]``: Gaussian with ``weight``'s
    per-dimension mean and standard deviation, seeded by ``(seed, token id)`` alone."""
    if not len(token_ids):
        return weight.new_zeros((0, weight.shape[1]))
    mean, std = weight.float().mean(0), weight.float().std(0)
    rows = []
    for token in token_ids.tolist():
        generator = torch.Generator().manual_seed(seed * SEED_STRIDE + int(token))
        rows.append(torch.randn(weight.shape[1], generator=generator))
    return (torch.stack(rows).to(weight.device) * std + mean).to(weight.dtype)


class Strangers:
    """The subject tokens of an update, each with the vectors it would have had the model never learned it."""

    def __init__(self, model: PeftModel, token_ids: torch.Tensor, seed: int) -> None:
        self.ids = torch.unique(token_ids).to(model.device)  # [S]
        self.inputs = unfamiliar_vectors(model.get_input_embeddings().weight, self.ids, seed)  # [S, H]
        self.outputs = unfamiliar_vectors(model.get_output_embeddings().weight, self.ids, seed).float()  # [S, H]

    def forward(self, model: PeftModel, batch: EncodedBatch, read_as_strangers: torch.Tensor | None) -> torch.Tensor:
        """Logits ``[B, T, V]`` (float32) where the positions in ``read_as_strangers`` (``[B, T]`` bool, or None)
        read the strangers' vectors, and every subject token scores as a stranger would as an output."""
        logits, scores = self._scored(model, batch, read_as_strangers)
        return logits.index_copy(-1, self.ids, scores)

    def reference(self, model: PeftModel, batch: EncodedBatch) -> torch.Tensor:
        """``[N, T-1, S]``: the subject tokens' stranger log-probabilities, normalised as the model's own
        log-probabilities on ``batch`` are, to be written over them (see :meth:`rewrite`)."""
        parts = []
        with torch.no_grad(), eval_mode(model):
            for chunk in batch.chunks(REFERENCE_BATCH):
                logits, scores = self._scored(model, chunk, None)
                parts.append((scores - logits.logsumexp(-1, keepdim=True))[:, :-1])
        return torch.cat(parts)

    def rewrite(self, logprobs: torch.Tensor, stranger: torch.Tensor) -> torch.Tensor:
        """``logprobs`` ``[B, T-1, V]`` with the subject tokens' columns set to ``stranger`` ``[B, T-1, S]``
        (from :meth:`reference`), renormalised."""
        return torch.log_softmax(logprobs.float().index_copy(-1, self.ids, stranger), dim=-1)

    def _scored(self, model: PeftModel, batch: EncodedBatch,
                read_as_strangers: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's logits ``[B, T, V]`` and the strangers' output scores ``[B, T, S]`` (both float32)."""
        embeds = model.get_input_embeddings()(batch.input_ids)
        if read_as_strangers is not None and read_as_strangers.any():
            embeds = embeds.clone()
            rows = torch.searchsorted(self.ids, batch.input_ids[read_as_strangers])
            embeds[read_as_strangers] = self.inputs[rows]
        captured: list[torch.Tensor] = []
        hook = model.get_output_embeddings().register_forward_hook(lambda _m, args, _o: captured.append(args[0]))
        try:
            logits = model(inputs_embeds=embeds, attention_mask=batch.attention_mask).logits.float()
        finally:
            hook.remove()
        return logits, captured[0].float() @ self.outputs.T  # what an unfamiliar token would score


@torch.no_grad()
def counterfactual_targets(model: PeftModel, forget: EncodedBatch, subject: torch.Tensor, forgotten: torch.Tensor,
                           strangers: Strangers, k: int, discount: torch.Tensor | None = None) -> Targets:
    """The reference's top-k next-token distributions on ``forget``: with the ``subject`` positions
    (``[N, T]`` bool, input positions) read as strangers where the label is ``forgotten`` (``[N, T-1]``
    bool: answers and the subject's own tokens), its own everywhere else.

    Everywhere else is the wording around the facts ("Answer:", a full stop). A model that never saw the
    person predicts it as confidently as the reference does, but vectors no training saw unsettle the
    reference's predictions there, and distilling towards that unsettled wording teaches the model to
    doubt the same wording in every sentence: on a stream of 50 updates, each the parent of the next,
    held-out statements ended 2.7 times as perplexing. The subject's tokens score as strangers
    everywhere, so the wording's targets never pull a forgotten name back up. ``discount`` (``[N, T-1]``
    nats, optional) is taken off each label's logit before the distribution is read.
    """
    parts = []
    with eval_mode(model):
        for rows in torch.arange(len(forget), device=forget.input_ids.device).split(REFERENCE_BATCH):
            chunk = forget.select(rows)
            logits = strangers.forward(model, chunk, subject[rows])[:, :-1]
            wording = ~forgotten[rows] & (chunk.labels[:, 1:] != IGNORE_INDEX)
            if wording.any():  # a chunk of probes has none: every label of a probe is forgotten
                logits[wording] = strangers.forward(model, chunk, None)[:, :-1][wording]
            if discount is not None:
                _discount_labels(logits, chunk.labels, discount[rows])
            parts.append(_chunk_targets(logits, chunk.labels, forgotten[rows], k))
    return Targets(*(torch.cat(column) for column in zip(*parts, strict=True)))


def _discount_labels(logits: torch.Tensor, labels: torch.Tensor, discount: torch.Tensor) -> None:
    rows, positions = torch.nonzero(discount, as_tuple=True)
    logits[rows, positions, labels[:, 1:][rows, positions]] -= discount[rows, positions]


def _chunk_targets(logits: torch.Tensor, labels: torch.Tensor, forgotten: torch.Tensor,
                   k: int) -> tuple[torch.Tensor, ...]:
    targets = labels[:, 1:]  # logits [B, T-1, V]: position t predicts label t + 1
    labelled = targets != IGNORE_INDEX
    safe = targets.clamp(min=0)
    reproduced = ((logits.argmax(-1) == targets) | ~labelled).all(-1) & labelled.any(-1)
    logprobs = torch.log_softmax(logits, dim=-1)
    label_logprob = torch.where(labelled, logprobs.gather(-1, safe.unsqueeze(-1)).squeeze(-1), 0.0)
    top, indices = logprobs.topk(k, dim=-1)
    missing = forgotten & ~(indices == safe.unsqueeze(-1)).any(-1)  # the label must be among the k tokens
    indices[..., -1] = torch.where(missing, safe, indices[..., -1])
    top[..., -1] = torch.where(missing, label_logprob, top[..., -1])
    return indices, top.exp(), forgotten & labelled, label_logprob, reproduced
