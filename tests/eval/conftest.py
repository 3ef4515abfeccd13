"""A real Llama whose next-token distribution is a fixed bigram table, so metrics have exact answers.

One decoder layer with zero output projections leaves the residual stream equal to the embedding; the
embedding of token ``i`` is ``e_i`` (one-hot), the final RMSNorm turns it into ``sqrt(H) * e_i``, and
``lm_head`` column ``i`` holds ``log P(. | i) / sqrt(H)``. The logits after token ``i`` are thus exactly
``log P(. | i)``, whatever came before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

VOCAB = ["<pad>", "<eos>", "a", "b", "c", "d"]
HIDDEN = 8
# P(next | current), rows are the current token; every row sums to 1.
BIGRAM = {
    "<pad>": {"<pad>": 0.5, "<eos>": 0.5},
    "<eos>": {"<eos>": 1.0},
    "a": {"b": 0.7, "c": 0.1, "d": 0.1, "a": 0.05, "<eos>": 0.05},
    "b": {"c": 0.6, "d": 0.2, "a": 0.1, "<eos>": 0.1},
    "c": {"<eos>": 0.5, "d": 0.3, "a": 0.2},
    "d": {"a": 0.4, "b": 0.3, "<eos>": 0.3},
}
FLOOR = 1e-6  # probability of every pair the table leaves out (log 0 is not a logit)


@dataclass
class BigramLM:
    model: LlamaForCausalLM
    tokenizer: PreTrainedTokenizerFast

    @staticmethod
    def prob(current: str, following: str) -> float:
        """P(following | current) as the model computes it (the floors renormalised away)."""
        return _raw(current, following) / sum(_raw(current, tok) for tok in VOCAB)


def _raw(current: str, following: str) -> float:
    return BIGRAM[current].get(following, FLOOR)


def _tokenizer() -> PreTrainedTokenizerFast:
    word_level = Tokenizer(models.WordLevel({tok: i for i, tok in enumerate(VOCAB)}, unk_token="<pad>"))
    word_level.normalizer = normalizers.Lowercase()  # "B" is the token "b", so case tests can encode it
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=word_level, pad_token="<pad>", eos_token="<eos>")


def _model() -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=len(VOCAB), hidden_size=HIDDEN, intermediate_size=8, num_hidden_layers=1,
                         num_attention_heads=1, num_key_value_heads=1, rms_norm_eps=1e-12,
                         tie_word_embeddings=False, pad_token_id=0, eos_token_id=1)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.model.embed_tokens.weight[:, : len(VOCAB)] = torch.eye(len(VOCAB))[:, : len(VOCAB)]
        model.model.norm.weight.fill_(1.0)
        for i, current in enumerate(VOCAB):
            logp = torch.tensor([math.log(_raw(current, nxt)) for nxt in VOCAB])  # softmax renormalises
            model.lm_head.weight[:, i] = logp / math.sqrt(HIDDEN)
    return model.eval()


@pytest.fixture(scope="session")
def bigram() -> BigramLM:
    return BigramLM(_model(), _tokenizer())
