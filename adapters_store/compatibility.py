"""Would vLLM load this PEFT adapter, and serve it as peft does? Checked before a version is published.

vLLM refuses at load time (``PEFTHelper.validate_legal``, ``LoRAModel.from_local_checkpoint``) what
peft happily saves: a rank above the server's ``--max-lora-rank``, trained biases, ``modules_to_save``,
DoRA, tensors of modules it does not know for the architecture, tensors other than lora_A/lora_B. Some
inconsistencies it loads without a word, and then serves something else than peft would (a config
rank that differs from the tensors' changes the alpha/r scaling; a lora_A without its lora_B; shapes
of another base): those are refused here too, as plain peft refuses them. Every problem is reported at
once, each in one sentence; no torch needed (the safetensors header is read directly), so an operator
tool or a serving process can run it alone.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters_store.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS

# vLLM's LoRAConfig accepts these as --max-lora-rank (vllm/config/lora.py); forgetd also publishes
# adapters of these ranks only (see _config_problems).
VLLM_RANKS = frozenset({1, 8, 16, 32, 64, 128, 256, 320, 512})
DEFAULT_MAX_RANK = 256
DEFAULT_ARCHITECTURE = "LlamaForCausalLM"
# Per architecture, the module names vLLM's model class declares as LoRA-capable.
LORA_MODULES: Mapping[str, frozenset[str]] = {
    "LlamaForCausalLM": frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                                   "embed_tokens", "lm_head"}),
}
EMBEDDING_MODULES = frozenset({"embed_tokens"})  # peft stores these as lora_embedding_A/B, no ".weight"

# peft's key layout: base_model.model.<module path>.<lora_A|lora_B>.weight, or .lora_embedding_A|B
_KEY = re.compile(r"base_model\.model\.(?P<path>.+)\."
                  r"(?:(?P<linear>lora_[AB])\.weight|(?P<embedding>lora_embedding_[AB]))")
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own bound on the JSON header


@dataclass(frozen=True)
class _Tensor:
    module: str  # full module path, e.g. model.layers.0.self_attn.q_proj
    part: str  # "A" or "B"
    shape: tuple[int, ...]
    embedding: bool


def check_vllm_compatibility(adapter_dir: Path, *, max_rank: int = DEFAULT_MAX_RANK,
                             base_config: Mapping[str, Any] | None = None) -> list[str]:
    """Every reason vLLM would refuse the adapter in ``adapter_dir``; empty when it would load it.

    ``max_rank`` is the serving vLLM's ``--max-lora-rank``. ``base_config`` (the base model's
    ``config.json``) picks the architecture and lets tensor shapes be checked against the base's
    dimensions; without it the architecture is Llama and shapes are only checked for consistency.
    """
    config, problems = _read_config(Path(adapter_dir) / ADAPTER_CONFIG)
    tensors, tensor_problems = _read_tensors(Path(adapter_dir) / ADAPTER_WEIGHTS)
    problems += tensor_problems
    if max_rank not in VLLM_RANKS:
        problems.append(f"max rank {max_rank} is not one vLLM accepts ({sorted(VLLM_RANKS)})")
    architecture = _architecture(base_config)
    known = LORA_MODULES.get(architecture)
    if known is None:
        return [*problems, f"architecture {architecture!r} has no known LoRA modules ({sorted(LORA_MODULES)})"]
    if config is None:
        return problems
    problems += _config_problems(config, max_rank, known)
    if tensors is not None:
        problems += _tensor_problems(config, tensors, known, _expected_dims(base_config))
    return problems


def _read_config(path: Path) -> tuple[dict[str, Any] | None, list[str]]:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None, [f"no {ADAPTER_CONFIG}"]
    except (OSError, ValueError) as e:
        return None, [f"{ADAPTER_CONFIG} is unreadable: {type(e).__name__}"]
    if not isinstance(config, dict):
        return None, [f"{ADAPTER_CONFIG} is not a JSON object"]
    return config, []


def _read_tensors(path: Path) -> tuple[dict[str, tuple[int, ...]] | None, list[str]]:
    """Tensor names and shapes from the safetensors header (8-byte little-endian length, then JSON)."""
    try:
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise ValueError("shorter than a safetensors header")
            (length,) = struct.unpack("<Q", prefix)
            if length > _MAX_HEADER_BYTES:
                raise ValueError(f"header of {length} bytes")
            header = json.loads(f.read(length))
    except FileNotFoundError:
        return None, [f"no {ADAPTER_WEIGHTS} (vLLM needs the safetensors file)"]
    except OSError as e:
        return None, [f"{ADAPTER_WEIGHTS} is unreadable: {type(e).__name__}"]
    except ValueError as e:  # our own reasons, or the JSON parser's position of the error
        return None, [f"{ADAPTER_WEIGHTS} is unreadable: {e}"]
    if not isinstance(header, dict):
        return None, [f"{ADAPTER_WEIGHTS} has no tensor table"]
    return {name: tuple(entry.get("shape", ())) for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict)}, []


def _architecture(base_config: Mapping[str, Any] | None) -> str:
    architectures = (base_config or {}).get("architectures") or [DEFAULT_ARCHITECTURE]
    return str(architectures[0])


def _config_problems(config: Mapping[str, Any], max_rank: int, known: frozenset[str]) -> list[str]:
    problems = []
    if config.get("peft_type") != "LORA":
        problems.append(f"peft_type is {config.get('peft_type')!r}, vLLM serves only 'LORA'")
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank not in VLLM_RANKS:
        # vLLM itself loads any rank up to its maximum; forgetd keeps to the ranks vLLM can be started with,
        # so that a lineage's adapters fit any server configured for their rank exactly.
        problems.append(f"rank r={rank!r} is not one of vLLM's LoRA ranks ({sorted(VLLM_RANKS)})")
    elif rank > max_rank:
        problems.append(f"rank r={rank} is above the server's max LoRA rank {max_rank}")
    if config.get("bias", "none") != "none":
        problems.append(f"bias is {config.get('bias')!r}; vLLM needs 'none' (no trained biases)")
    if config.get("modules_to_save"):
        problems.append(f"modules_to_save {config['modules_to_save']!r} is set; vLLM loads LoRA weights only")
    if config.get("use_dora"):
        problems.append("use_dora is set; vLLM does not serve DoRA adapters")
    targets = config.get("target_modules")
    if isinstance(targets, list):
        unknown = sorted({str(t).rsplit(".", 1)[-1] for t in targets} - known)
        if unknown:
            problems.append(f"target modules {unknown} are not LoRA modules vLLM knows ({sorted(known)})")
    elif not isinstance(targets, str):  # peft also accepts one regex, matched against module paths
        problems.append(f"target_modules is {targets!r}, expected a list of module names or a regex")
    return problems


def _tensor_problems(config: Mapping[str, Any], tensors: Mapping[str, tuple[int, ...]], known: frozenset[str],
                     dims: Mapping[str, tuple[int, int]] | None) -> list[str]:
    parsed, problems = _parse_keys(tensors)
    modules: dict[str, dict[str, _Tensor]] = {}
    for tensor in parsed:
        modules.setdefault(tensor.module, {})[tensor.part] = tensor
    problems += _module_problems(config, modules, known)
    rank = config.get("r")
    if isinstance(rank, int):
        for path, parts in sorted(modules.items()):
            problems += _shape_problems(path, parts, rank)
    problems += _consistency_problems(modules, dims)
    if not modules and not problems:
        problems.append(f"{ADAPTER_WEIGHTS} holds no LoRA tensors")
    return problems


def _parse_keys(tensors: Mapping[str, tuple[int, ...]]) -> tuple[list[_Tensor], list[str]]:
    parsed, unexpected = [], []
    for key, shape in sorted(tensors.items()):
        match = _KEY.fullmatch(key)
        if match is None:
            unexpected.append(key)
            continue
        part = (match["linear"] or match["embedding"])[-1]
        parsed.append(_Tensor(match["path"], part, shape, match["embedding"] is not None))
    problems = [f"unexpected tensor {key!r} (vLLM loads only lora_A/lora_B weights)" for key in unexpected[:5]]
    if len(unexpected) > 5:
        problems.append(f"... and {len(unexpected) - 5} more unexpected tensors")
    return parsed, problems


def _module_problems(config: Mapping[str, Any], modules: Mapping[str, Mapping[str, _Tensor]],
                     known: frozenset[str]) -> list[str]:
    problems = []
    targets = config.get("target_modules")
    for path, parts in sorted(modules.items()):
        name = path.rsplit(".", 1)[-1]
        if name not in known:
            problems.append(f"tensors for module {path!r}, which vLLM does not know for this architecture")
        elif not _targeted(path, targets):
            problems.append(f"tensors for module {path!r}, which target_modules does not name")
        if set(parts) != {"A", "B"}:
            problems.append(f"module {path!r} lacks its lora_{'B' if 'A' in parts else 'A'} tensor")
        elif (name in EMBEDDING_MODULES) != parts["A"].embedding:
            problems.append(f"module {path!r} stores {'linear' if name in EMBEDDING_MODULES else 'embedding'} "
                            "LoRA tensors")
    if isinstance(targets, list):
        present = {path.rsplit(".", 1)[-1] for path in modules}
        missing = sorted({str(t).rsplit(".", 1)[-1] for t in targets} - present)
        if missing:
            problems.append(f"target modules {missing} have no tensors in {ADAPTER_WEIGHTS}")
    return problems


def _targeted(path: str, targets: object) -> bool:
    if isinstance(targets, str):
        return re.fullmatch(targets, path) is not None
    if isinstance(targets, list):
        return any(path == t or path.endswith(f".{t}") for t in map(str, targets))
    return False


def _shape_problems(path: str, parts: Mapping[str, _Tensor], rank: int) -> list[str]:
    """A is [r, in] and B is [out, r] (embeddings too: A [r, vocab], B [hidden, r])."""
    problems = []
    for part, rank_axis in (("A", 0), ("B", 1)):
        tensor = parts.get(part)
        if tensor is None:
            continue
        if len(tensor.shape) != 2:
            problems.append(f"lora_{part} of {path!r} has shape {list(tensor.shape)}, expected two dimensions")
        elif tensor.shape[rank_axis] != rank:
            problems.append(f"lora_{part} of {path!r} has rank {tensor.shape[rank_axis]}, the config says r={rank}")
    return problems


def _consistency_problems(modules: Mapping[str, Mapping[str, _Tensor]],
                          dims: Mapping[str, tuple[int, int]] | None) -> list[str]:
    """Every layer's copy of a module has one (in, out); with the base's config, the base's."""
    seen: dict[str, tuple[int, int]] = {}
    problems = []
    for path, parts in sorted(modules.items()):
        if set(parts) != {"A", "B"} or len(parts["A"].shape) != 2 or len(parts["B"].shape) != 2:
            continue  # already reported
        name = path.rsplit(".", 1)[-1]
        in_out = (parts["A"].shape[1], parts["B"].shape[0])
        expected = dims.get(name) if dims is not None else seen.setdefault(name, in_out)
        if expected is not None and in_out != expected:
            source = "the base model" if dims is not None else "the module's other layers"
            problems.append(f"module {path!r} maps {in_out[0]} -> {in_out[1]} features, {source} "
                            f"{expected[0]} -> {expected[1]}")
    return problems


def _expected_dims(base_config: Mapping[str, Any] | None) -> dict[str, tuple[int, int]] | None:
    """(in, out) features of each Llama LoRA module, from the base's config.json; None without one."""
    if base_config is None:
        return None
    try:
        hidden = int(base_config["hidden_size"])
        heads = int(base_config["num_attention_heads"])
        kv_heads = int(base_config.get("num_key_value_heads") or heads)
        head_dim = int(base_config.get("head_dim") or hidden // heads)
        inter = int(base_config["intermediate_size"])
        vocab = int(base_config["vocab_size"])
    except (KeyError, TypeError, ValueError):
        return None  # not a Llama-shaped config: consistency between layers is still checked
    q, kv = heads * head_dim, kv_heads * head_dim
    return {"q_proj": (hidden, q), "k_proj": (hidden, kv), "v_proj": (hidden, kv), "o_proj": (q, hidden),
            "gate_proj": (hidden, inter), "up_proj": (hidden, inter), "down_proj": (inter, hidden),
            "embed_tokens": (vocab, hidden), "lm_head": (hidden, vocab)}
