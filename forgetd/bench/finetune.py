"""Teaching a pretrained base the benchmark's people: full-parameter fine-tuning until it recalls them.

TOFU fine-tunes its base models on the fictitious authors before any unlearning (Maini et al. 2024, sec.
3); the original and the retrained (gold) model here come from this same recipe and seed, on all subjects
and on all but the forgotten ones respectively.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from forgetd.eval.encoding import encode_texts
from forgetd.eval.likelihood import language_modelling_step
from forgetd.eval.probes import probe_recall
from forgetd.models.people import Person
from forgetd.models.tiny import fact_probes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneRecipe:
    """Full-parameter AdamW on every statement (plus EOS) until recall reaches ``min_recall``."""

    learning_rate: float = 5e-5
    batch_size: int = 16
    max_steps: int = 600
    check_every: int = 25
    min_recall: float = 0.95
    max_seq_len: int = 128


def finetune_pretrained(base: Path, people: Sequence[Person], seed: int, recipe: FinetuneRecipe, out_dir: Path,
                        device: torch.device) -> tuple[int, float]:
    """Fine-tune ``base`` on ``people``'s statements, save model and tokenizer to ``out_dir``.

    Returns the steps taken and the final recall of the people's facts. Trained in float32, saved in bf16.
    """
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, device_map=device)
    texts = [statement + (tokenizer.eos_token or "") for person in people for statement in person.statements]
    batch = encode_texts(tokenizer, texts, recipe.max_seq_len)
    probes = fact_probes(people)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    steps, recall = recipe.max_steps, 0.0
    for step in range(1, recipe.max_steps + 1):
        model.train()
        rows = torch.randperm(len(batch), generator=generator)[:recipe.batch_size]
        chunk = batch.select(rows).to(device)
        language_modelling_step(model, chunk, optimizer)
        if step % recipe.check_every == 0:
            recall = probe_recall(model, tokenizer, probes)
            if recall >= recipe.min_recall:
                steps = step
                break
    model.eval()
    model.bfloat16().save_pretrained(out_dir)  # the weights' precision of the converted SmolLM2
    tokenizer.save_pretrained(out_dir)
    logger.info("fine-tuned %s on %d subjects: %d steps, recall %.3f", base.name, len(people), steps, recall)
    return steps, recall
