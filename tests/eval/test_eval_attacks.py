"""The relearning and quantisation attacks, and the merged copies they work on, on the bigram model."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from forgetd.eval.fact_recall import fact_recall
from forgetd.eval.lm import merged_copy
from forgetd.eval.quantization import default_scheme, quantized_copy
from forgetd.eval.relearn import RelearnAttack, relearn_recovery, relearned_copy
from forgetd.models.people import Fact


def logits(model, tokenizer, text: str) -> torch.Tensor:
    enc = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


def test_merged_copy_of_a_lora_model_keeps_its_outputs_and_leaves_it_alone(bigram):
    lora = get_peft_model(merged_copy(bigram.model), LoraConfig(r=2, target_modules=["q_proj", "o_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_()  # a non-trivial adapter
    merged = merged_copy(lora)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert torch.allclose(logits(merged, bigram.tokenizer, "a b c"), logits(lora, bigram.tokenizer, "a b c"),
                          atol=1e-5)
    assert any("lora" in name for name, _ in lora.named_parameters())  # the original still has its adapter


def test_relearning_teaches_the_copy_and_leaves_the_model_alone(bigram):
    before = logits(bigram.model, bigram.tokenizer, "c d")
    held_back = [Fact("c", "d")]  # after c the argmax is <eos> (0.5), not d (0.3)
    result = relearn_recovery(bigram.model, bigram.tokenizer, ["c d"] * 4, held_back,
                              RelearnAttack(steps=20, learning_rate=0.05, batch_size=4))
    assert (result.recall_before, result.recall_after) == (0.0, 1.0)
    assert result.recovery == 1.0
    assert torch.equal(logits(bigram.model, bigram.tokenizer, "c d"), before)


def test_relearning_is_deterministic_in_its_seed(bigram):
    attack = RelearnAttack(steps=3, learning_rate=0.01, batch_size=1, seed=7)
    first = relearned_copy(bigram.model, bigram.tokenizer, ["a b", "c d", "d a"], attack)
    second = relearned_copy(bigram.model, bigram.tokenizer, ["a b", "c d", "d a"], attack)
    assert torch.equal(logits(first, bigram.tokenizer, "a b c d"), logits(second, bigram.tokenizer, "a b c d"))


@pytest.mark.parametrize("bad", [{"steps": 0}, {"batch_size": 0}, {"learning_rate": 0.0}])
def test_relearn_attack_settings_are_checked(bad):
    with pytest.raises(ValueError, match="must be positive"):
        RelearnAttack(**bad)


def test_int8_copy_keeps_what_the_model_knows_and_leaves_it_alone(bigram):
    facts = [Fact("a", "b"), Fact("d", "a"), Fact("c", "d"), Fact("b", "a")]
    quantized = quantized_copy(bigram.model, "int8")
    assert fact_recall(quantized, bigram.tokenizer, facts).prompt_hits == [True, True, False, False]
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in quantized.modules())
    assert not any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in bigram.model.modules())
    batch_logits = logits(quantized, bigram.tokenizer, "a b")
    assert torch.allclose(torch.softmax(batch_logits, -1), torch.softmax(logits(bigram.model, bigram.tokenizer, "a b"),
                                                                         -1), atol=0.05)


def test_default_scheme_on_cpu_is_int8():
    assert default_scheme(torch.device("cpu")) == "int8"


def test_unknown_scheme_is_refused(bigram):
    with pytest.raises(ValueError, match="unknown quantisation scheme 'fp3'"):
        quantized_copy(bigram.model, "fp3")  # type: ignore[arg-type]
