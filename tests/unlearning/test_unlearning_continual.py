"""Continual pieces: the bounded replay sample and rank-bounded consolidation by truncated SVD."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from forgetd.payload import Probe
from forgetd.unlearning.consolidation import fold_deltas
from forgetd.unlearning.importance import lora_factors, lora_modules
from forgetd.unlearning.replay import replay_sample


def probes(request: int, count: int) -> list[Probe]:
    return [Probe(prompt=f"request {request} prompt {i}", completion=f"answer {i}") for i in range(count)]


def test_replay_is_capped_and_spread_over_the_earlier_requests():
    earlier = [probes(r, 6) for r in range(40)]
    chosen = replay_sample(earlier, 24, seed=0)
    assert len(chosen) == 24
    assert len({p.prompt.split()[1] for p in chosen}) == 24  # one probe from each of 24 requests
    assert chosen == replay_sample(earlier, 24, seed=0)
    assert len(replay_sample(earlier[:2], 24, seed=0)) == 12  # fewer than the cap: all of them
    assert replay_sample([], 24, seed=0) == []


def tiny_lora(rank: int = 4):
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2)
    torch.manual_seed(0)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=rank, lora_alpha=8, target_modules=["q_proj"]))
    for module in lora_modules(model).values():
        torch.nn.init.normal_(lora_factors(module)[1])  # a non-zero current delta B A
    return model


def effective(module) -> torch.Tensor:
    a, b, scale = lora_factors(module)
    return scale * (b @ a)


def test_a_delta_that_fits_the_rank_is_folded_exactly():
    model = tiny_lora(rank=4)
    modules = lora_modules(model)
    # rank(B A) <= 2 here, so B A + D has rank <= 4: the truncation keeps all of it
    deltas = {name: torch.randn(16, 1) @ torch.randn(1, 16) for name in modules}
    for module in modules.values():
        lora_factors(module)[1].data[:, 2:] = 0
    before = {name: effective(m).detach().clone() for name, m in modules.items()}
    result = fold_deltas(model, deltas)
    assert result.rank == 4 and result.modules == len(modules)
    assert result.energy_kept == pytest.approx(1.0, abs=1e-6)
    for name, module in modules.items():
        torch.testing.assert_close(effective(module), before[name] + deltas[name], atol=1e-5, rtol=1e-4)


def test_a_delta_beyond_the_rank_keeps_the_best_rank_r_part_and_says_how_much():
    model = tiny_lora(rank=4)
    modules = lora_modules(model)
    deltas = {name: torch.randn(16, 16) for name in modules}
    targets = {name: effective(m).detach() + deltas[name] for name, m in modules.items()}
    result = fold_deltas(model, deltas)
    assert 0 < result.min_energy_kept <= result.energy_kept < 1
    for name, module in modules.items():
        s = torch.linalg.svdvals(targets[name])
        error = torch.linalg.matrix_norm(effective(module) - targets[name]) ** 2
        assert error.item() == pytest.approx(s[4:].pow(2).sum().item(), rel=1e-3)  # Eckart-Young
        assert lora_factors(module)[0].shape == (4, 16)  # the adapter's shape never changes


def test_a_batch_carries_replayed_probes_and_neighbours_and_keeps_them_when_requests_drop():
    from forgetd.payload import DeletionPayload
    from forgetd.unlearning import UnlearningBatch

    payloads = [DeletionPayload(texts=[f"text {r}"], probes=probes(r, 2), neighbours=probes(100 + r, 1))
                for r in range(3)]
    replayed, kept = probes(7, 3), probes(8, 2)
    batch = UnlearningBatch.from_payloads(payloads, iter(replayed), iter(kept))
    assert batch.replay_probes == replayed
    assert batch.retain_probes == [p for payload in payloads for p in payload.neighbours] + kept
    # a replayed probe trains as a probe and as one sentence, both in a group of its own
    assert batch.training_texts() == ["text 0", "text 1", "text 2"] + [f"{p.prompt} {p.completion}" for p in replayed]
    assert batch.training_probes() == batch.forget_probes + replayed
    assert batch.row_groups() == [0, 1, 2, 3, 4, 5, 0, 0, 1, 1, 2, 2, 3, 4, 5]
    assert batch.replayed_rows() == [False] * 3 + [True] * 3 + [False] * 6 + [True] * 3
    smaller = batch.without({0, 2})
    assert smaller.forget_texts == ["text 1"] and smaller.payloads == (payloads[1],)
    assert smaller.replay_probes == replayed
    assert smaller.retain_probes == payloads[1].neighbours + kept


def test_recent_payloads_skips_shredded_requests_and_stops_at_the_limit():
    from forgetd.payload import DeletionPayload
    from forgetd.unlearning.replay import recent_payloads

    class Shredded(Exception):
        pass

    opened: list[str] = []

    def open_payload(request_id: str) -> DeletionPayload:
        opened.append(request_id)
        if request_id.startswith("old"):
            raise Shredded(request_id)
        return DeletionPayload(texts=[request_id])

    versions = iter([("v3a", "v3b"), ("old2",), ("v1a", "v1b"), ("never",)])
    found = recent_payloads(versions, open_payload, (Shredded,), limit=4)
    assert [p.texts[0] for p in found] == ["v3a", "v3b", "v1a"]
    assert opened == ["v3a", "v3b", "old2", "v1a"]  # at most 4 looked at, the oldest never opened


def test_a_neighbour_asking_what_the_batch_forgets_is_not_kept():
    from forgetd.payload import DeletionPayload
    from forgetd.unlearning import UnlearningBatch

    # Request 1 asks to keep request 0's facts (forgotten earlier, now replayed); request 2 asks to keep
    # request 1's; an earlier request asked to keep request 2's. Forgetting wins each time.
    replayed = probes(0, 2)
    first = DeletionPayload(texts=["text 1"], probes=probes(1, 2), neighbours=[*replayed, *probes(3, 1)])
    asks_about_first = Probe(prompt=" request 1 prompt 0 ", completion="x")
    second = DeletionPayload(texts=["text 2"], probes=probes(2, 2), neighbours=[asks_about_first])
    earlier_neighbours = [*probes(2, 1), *probes(4, 1)]

    batch = UnlearningBatch.from_payloads([first], replayed, earlier_neighbours)
    both = UnlearningBatch.from_payloads([first, second], replayed, earlier_neighbours)

    assert batch.retain_probes == [*probes(3, 1), *probes(2, 1), *probes(4, 1)] and batch.replay_neighbours == 2
    assert both.retain_probes == [*probes(3, 1), *probes(4, 1)] and both.replay_neighbours == 1
