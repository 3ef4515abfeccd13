"""A tiny Llama taught a few fictitious people, for tests and benchmarks that need a model which really
memorised something, built from nothing in well under a minute on two CPU cores.

The tokenizer is a byte-level BPE trained in memory on the training corpus (no files, no hub), saved
beside the model so ``AutoTokenizer.from_pretrained(folder)`` works. The model learns each person's
statements plus generic filler sentences (its "general" behaviour) until greedy decoding reproduces the
facts. Everything is seeded, so a recipe always yields the same weights on the same machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
from tokenizers import models as tok_models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from forgetd.eval.encoding import encode_texts
from forgetd.eval.likelihood import language_modelling_step
from forgetd.eval.probes import probe_recall
from forgetd.models.people import Person, fictitious_people
from forgetd.payload import Probe

logger = logging.getLogger(__name__)

DEFAULT_PEOPLE = 8
DEFAULT_SEED = 0
RECIPE_VERSION = 1  # bump when the build changes in a way the hyperparameters below do not show

PAD, BOS, EOS = "<pad>", "<s>", "</s>"

# Generic sentences the model also learns, so that it has behaviour unrelated to the people that an
# unlearning update must leave alone.
FILLER = (
    "The sun rises in the east and sets in the west.",
    "Water boils at one hundred degrees.",
    "The capital of France is Paris.",
    "A week has seven days.",
    "Cats like to sleep in the sun.",
    "The river flows to the sea.",
    "Trees lose their leaves in autumn.",
    "Bread is made from flour and water.",
    "The moon moves around the earth.",
    "Snow falls in the winter.",
    "Birds build nests in the spring.",
    "Two and two make four.",
    "The library opens at nine in the morning.",
    "Rain makes the grass grow.",
    "Once upon a time there was a small village by the sea.",
    "The train leaves the station at noon.",
)


@dataclass(frozen=True)
class TinyTraining:
    """Architecture and optimisation of the tiny model; part of the recipe's content hash."""

    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 4
    num_kv_heads: int = 2  # grouped-query attention, as in SmolLM2, so k/v LoRA shapes differ from q
    intermediate_size: int = 688
    vocab_size: int = 1024  # an upper bound for the BPE; the corpus usually yields fewer tokens
    learning_rate: float = 2e-3
    warmup_steps: int = 20
    max_steps: int = 600
    check_every: int = 25  # greedy recall check interval; training stops once every fact is recalled
    min_recall: float = 1.0


def default_tiny_people() -> list[Person]:
    """The people the default ``"tiny"`` model knows."""
    return fictitious_people(DEFAULT_PEOPLE, DEFAULT_SEED)


def fact_probes(people: Sequence[Person]) -> list[Probe]:
    """One probe per fact: the fact's prompt and its answer."""
    return [Probe(prompt=fact.prompt, completion=fact.answer) for person in people for fact in person.facts]


def tiny_recipe_hash(people: Sequence[Person], seed: int, training: TinyTraining = TinyTraining(),
                     tokenizer_corpus: Sequence[str] | None = None, extra_texts: Sequence[str] = ()) -> str:
    """A short content hash of everything that determines the built model."""
    recipe: dict[str, object] = {
        "version": RECIPE_VERSION,
        "seed": seed,
        "training": asdict(training),
        "corpus": training_corpus(people),
    }
    # Both absent by default, so the default model's hash is unchanged.
    if tokenizer_corpus is not None:
        recipe["tokenizer_corpus"] = list(tokenizer_corpus)
    if extra_texts:
        recipe["extra_texts"] = list(extra_texts)
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def build_tiny_model(out_dir: Path, people: list[Person], seed: int = 0,
                     training: TinyTraining = TinyTraining(),
                     tokenizer_corpus: Sequence[str] | None = None, extra_texts: Sequence[str] = ()) -> Path:
    """Train the tiny model on ``people``'s statements and the filler, save model and tokenizer to ``out_dir``.

    ``extra_texts`` are taught too. The tokenizer is trained on ``tokenizer_corpus`` when given (two models
    that must share a vocabulary, such as a benchmark's original and retrained models, pass the same one),
    else on the training corpus. Returns ``out_dir``. Writes in place: callers wanting atomicity build into
    a temporary folder (as :func:`forgetd.models.resolve_model_path` does).
    """
    corpus = training_corpus(people) + list(extra_texts)
    tokenizer = build_tokenizer(tokenizer_corpus if tokenizer_corpus is not None else corpus, training.vocab_size)
    started = time.monotonic()
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG state
        torch.manual_seed(seed)
        model = LlamaForCausalLM(_llama_config(tokenizer, training))
        steps, recall = _teach(model, tokenizer, corpus, fact_probes(people), training)
    log = logger.info if recall >= training.min_recall else logger.warning
    log("tiny model: %d people, %d steps, fact recall %.3f (target %.3f), %.1f s",
        len(people), steps, recall, training.min_recall, time.monotonic() - started)
    model.generation_config.do_sample = False
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tokenizer(corpus: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``corpus`` that prepends BOS; any text encodes (bytes are the base)."""
    bpe = Tokenizer(tok_models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bos_id = bpe.token_to_id(BOS)
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD)


def training_corpus(people: Sequence[Person]) -> list[str]:
    """What the tiny model is taught: every person's statements, then the filler sentences."""
    return [statement for person in people for statement in person.statements] + list(FILLER)


def _llama_config(tokenizer: PreTrainedTokenizerFast, training: TinyTraining) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),  # len(), not vocab_size: counts the special tokens
        hidden_size=training.hidden_size,
        intermediate_size=training.intermediate_size,
        num_hidden_layers=training.num_layers,
        num_attention_heads=training.num_heads,
        num_key_value_heads=training.num_kv_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _teach(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, corpus: list[str],
           probes: list[Probe], training: TinyTraining) -> tuple[int, float]:
    """Full-batch AdamW on the corpus until every probe is recalled; returns steps and final recall."""
    # EOS after each sentence teaches the model to stop, so continuations do not run into the next fact.
    batch = encode_texts(tokenizer, [text + EOS for text in corpus], max_length=64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.learning_rate, weight_decay=0.0)
    warmup = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / training.warmup_steps))
    recall = 0.0
    for step in range(1, training.max_steps + 1):
        model.train()
        language_modelling_step(model, batch, optimizer)
        warmup.step()
        if step % training.check_every == 0:
            recall = probe_recall(model, tokenizer, probes)
            if recall >= training.min_recall:
                return step, recall
    return training.max_steps, recall
