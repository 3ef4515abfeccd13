"""The tensors an unlearning step consumes, built once per update and shared by every method.

Forget sequences are the request's texts (every token carries loss) followed by its forget probes (only
the completion carries loss, so the exact answers verification looks for are targeted). Retain sequences
are the retain probes. The reference model's outputs are snapshotted before training: the summed NLL of
each forget sequence (NPO's reference likelihood) and the full next-token log-distribution on the retain
sequences (the KL term). The reference is the model as it was before this update, the parent adapter
included, so no second model copy is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.eval.encoding import EncodedBatch, concat_batches, encode_probes, encode_texts
from forgetd.eval.likelihood import forward_logits, sequence_nll
from forgetd.eval.lm import eval_mode
from forgetd.payload import Probe

if TYPE_CHECKING:  # subjects reads UnlearningData
    from forgetd.unlearning.subjects import ForgottenSubjects

REFERENCE_BATCH = 16  # sequences per no-grad forward when snapshotting the reference
REPLAY_SHARE = 0.25  # of a step's forget rows, the share replayed rows take (see UnlearningData.sample)


@dataclass(frozen=True)
class StepInputs:
    """One step's minibatch (all tensors on the model's device)."""

    forget: EncodedBatch
    forget_ref_nll: torch.Tensor  # [B_f] reference summed NLL of each forget sequence's labelled tokens
    retain: EncodedBatch
    retain_ref_logprobs: torch.Tensor  # [B_r, T_r - 1, V] reference log p(. | prefix) at each position
    forget_rows: torch.Tensor  # [B_f] row numbers in UnlearningData.forget (for a method's own snapshots)
    retain_rows: torch.Tensor  # [B_r] row numbers in UnlearningData.retain


@dataclass(frozen=True)
class UnlearningData:
    """Every forget and retain sequence of an update with its reference snapshot."""

    forget: EncodedBatch
    forget_ref_nll: torch.Tensor
    retain: EncodedBatch
    retain_ref_logprobs: torch.Tensor
    forget_is_probe: torch.Tensor  # [N_f] bool: the row is a probe (loss on its completion), not a text
    forget_groups: torch.Tensor  # [N_f] long: the request each row comes from (see UnlearningBatch.row_groups)
    forget_is_replayed: torch.Tensor  # [N_f] bool: the row replays an earlier request (already forgotten)
    forgotten: ForgottenSubjects | None = None  # whom the lineage forgot before; None: not known

    def sample(self, batch_size: int, generator: torch.Generator, replay_share: float = REPLAY_SHARE) -> StepInputs:
        """A minibatch of up to ``batch_size`` forget and ``batch_size`` retain sequences, of which the
        replayed forget rows take ``replay_share`` of the forget slots and whatever the update's own rows
        leave free.

        Replay is meant to be light: a batch of 8 requests replays about twice as many rows as it brings
        (96 probes, each also as a sentence), and drawn uniformly they would take two rows in three from
        the requests being forgotten now.
        """
        replayed = self.forget_is_replayed.cpu()
        own_rows, replayed_rows = torch.nonzero(~replayed).flatten(), torch.nonzero(replayed).flatten()
        own_slots = batch_size - int(replay_share * batch_size) if len(replayed_rows) else batch_size
        own_rows = own_rows[_rows(len(own_rows), own_slots, generator)]
        replayed_rows = replayed_rows[_rows(len(replayed_rows), batch_size - len(own_rows), generator)]
        forget_rows = torch.cat([own_rows, replayed_rows]).to(self.forget.input_ids.device)
        retain_rows = _rows(len(self.retain), batch_size, generator).to(self.retain.input_ids.device)
        return StepInputs(
            forget=self.forget.select(forget_rows),
            forget_ref_nll=self.forget_ref_nll[forget_rows],
            retain=self.retain.select(retain_rows),
            retain_ref_logprobs=self.retain_ref_logprobs[retain_rows],
            forget_rows=forget_rows,
            retain_rows=retain_rows,
        )


def prepare_data(model: PeftModel, tokenizer: PreTrainedTokenizerBase, forget_texts: Sequence[str],
                 forget_probes: Sequence[Probe], retain_probes: Sequence[Probe], max_seq_len: int,
                 groups: Sequence[int] | None = None, replayed: Sequence[bool] | None = None,
                 forgotten: ForgottenSubjects | None = None) -> UnlearningData:
    """Encode the update's sequences and snapshot ``model`` (still untrained) as the reference.

    ``groups`` names the request of each forget row (texts, then probes); None: all from one request.
    ``replayed`` flags the rows replayed from earlier requests; None: none is. ``forgotten`` is whom the
    lineage forgot before this update.
    """
    parts = []
    if forget_texts:
        parts.append(encode_texts(tokenizer, forget_texts, max_seq_len))
    if forget_probes:
        parts.append(encode_probes(tokenizer, forget_probes, max_seq_len))
    device = model.device
    forget = concat_batches(parts).to(device)
    is_probe = torch.arange(len(forget), device=device) >= len(forget_texts)  # texts first, then probes
    retain = encode_probes(tokenizer, retain_probes, max_seq_len).to(device)
    forget_ref_nll, retain_ref_logprobs = _reference(model, forget, retain)
    for name, flags in (("groups", groups), ("replayed flags", replayed)):
        if flags is not None and len(flags) != len(forget):
            raise ValueError(f"{len(flags)} {name} for {len(forget)} forget rows")
    row_groups = torch.tensor(list(groups) if groups is not None else [0] * len(forget), device=device)
    is_replayed = torch.tensor(list(replayed) if replayed is not None else [False] * len(forget), device=device)
    return UnlearningData(forget, forget_ref_nll, retain, retain_ref_logprobs, is_probe, row_groups, is_replayed,
                          forgotten)


@torch.no_grad()
def _reference(model: PeftModel, forget: EncodedBatch,
               retain: EncodedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    with eval_mode(model):
        forget_nll = torch.cat([sequence_nll(forward_logits(model, chunk), chunk.labels)[0]
                                for chunk in forget.chunks(REFERENCE_BATCH)])
        # Kept in the model's dtype: [N, T-1, V] is the largest tensor of an update (bf16 halves it on GPU).
        retain_logprobs = torch.cat([torch.log_softmax(forward_logits(model, chunk)[:, :-1].float(), dim=-1)
                                     .to(model.dtype) for chunk in retain.chunks(REFERENCE_BATCH)])
    return forget_nll, retain_logprobs


def _rows(n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    # Small sets go whole into every step (deterministic); larger ones are sampled without replacement.
    if n <= batch_size:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:batch_size]
