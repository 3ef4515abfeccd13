"""Keeping a lineage's adapter at its rank: fold a weight delta into the LoRA layers by truncated SVD.

A LoRA layer computes ``W x + s * B A x`` (``s = alpha / r``). To add a delta ``D`` to what the adapter
already does, the summed delta ``s * B A + D`` (rank up to ``r + rank(D)``) is factorised and truncated
back to rank ``r`` (Eckart-Young: the best rank-``r`` approximation in Frobenius norm), then split as
``B = U_r S_r / s`` and ``A = V_r^T``. The adapter's shape, and so its bytes, never change.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from peft import PeftModel

from forgetd.unlearning.importance import lora_factors, lora_modules


@dataclass(frozen=True)
class Consolidation:
    """What a truncation kept: the rank and the share of the summed delta's energy (squared singular
    values) that survived, the worst over modules and overall."""

    rank: int
    modules: int
    energy_kept: float
    min_energy_kept: float

    def manifest_fields(self) -> dict[str, float | int]:
        return {"forgetd_consolidated_rank": self.rank, "forgetd_consolidation_energy": self.energy_kept,
                "forgetd_consolidation_min_energy": self.min_energy_kept}


@torch.no_grad()
def fold_deltas(model: PeftModel, deltas: dict[str, torch.Tensor]) -> Consolidation:
    """Add ``deltas`` (per LoRA module name, ``[out, in]``) to the adapter, truncated back to its rank."""
    modules = lora_modules(model)
    kept, total, worst, rank = 0.0, 0.0, 1.0, 0
    for name, delta in deltas.items():
        a, b, scale = lora_factors(modules[name])  # [r, in], [out, r]
        rank = a.shape[0]
        summed = scale * (b.float() @ a.float()) + delta.float()
        u, s, vh = torch.linalg.svd(summed, full_matrices=False)
        energy = s.pow(2)
        kept += float(energy[:rank].sum())
        total += float(energy.sum())
        worst = min(worst, float(energy[:rank].sum() / energy.sum().clamp(min=1e-30)))
        b.copy_((u[:, :rank] * s[:rank] / scale).to(b.dtype))
        a.copy_(vh[:rank].to(a.dtype))
    return Consolidation(rank, len(deltas), kept / total if total else 1.0, worst)
