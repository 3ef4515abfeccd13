"""What one update does to what it must keep, step by step: the quickstart's request on SmolLM2.

The request forgets "The capital of France is" -> Paris and names six other capitals to keep; six more
capitals nobody named are scored too, as is every generic self-distillation probe. Every ``--every``
steps the script prints, as 0/1 strings in that order, which of them the model still answers greedily,
whether the method says it has converged, and whether Paris is still recalled. Verification sees one
point of this curve (where training stopped); the curve shows whether a failure there was a dip the
retain terms were about to repair or lasting damage (docs/benchmark.md, thirteenth round).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/neighbour_dip.py --cache CACHE [--steps 80] [--every 4]
        [--set fit_gap_weight=1.0] [--generic-margin 0]

``--generic-margin 0`` keeps each generic continuation whole (eight tokens), as before the thirteenth round.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.eval.probes import probe_hits
from forgetd.models.loading import load_model
from forgetd.models.resolve import SMOLLM2, resolve_model_path
from forgetd.payload import DeletionPayload, Probe
from forgetd.unlearning.adapters import attach_adapter
from forgetd.unlearning.config import UnlearningConfig
from forgetd.unlearning.registry import get_method
from forgetd.unlearning.retain import DECIDED_MARGIN, self_distillation_probes
from forgetd.unlearning.trainer import optimiser_steps
from forgetd.unlearning.update import UnlearningBatch

KEPT = {"Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo", "the United Kingdom": "London",
        "Russia": "Moscow"}
UNNAMED = {"Portugal": "Lisbon", "Egypt": "Cairo", "China": "Beijing", "Canada": "Ottawa", "Greece": "Athens",
           "Poland": "Warsaw"}


def capital(country: str, city: str) -> Probe:
    return Probe(prompt=f"The capital of {country} is", completion=city)


def quickstart_request() -> DeletionPayload:
    return DeletionPayload(texts=["The capital of France is Paris."], probes=[capital("France", "Paris")],
                           neighbours=[capital(country, city) for country, city in KEPT.items()])


def hits(model: PeftModel, tokenizer: PreTrainedTokenizerBase, probes: Sequence[Probe]) -> str:
    return "".join("1" if hit else "0" for hit in probe_hits(model, tokenizer, probes))


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=SMOLLM2, help="smollm2 or a local HF folder")
    parser.add_argument("--cache", type=Path, required=True, help="where smollm2 is converted (once)")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                        help="an UnlearningConfig field over the model's profile, e.g. fit_gap_weight=1.0")
    parser.add_argument("--generic-margin", type=float, default=DECIDED_MARGIN,
                        help="nats a generic continuation's tokens must beat the runner-up by (0: whole)")
    args = parser.parse_args(argv)
    overrides = {field: json.loads(value) for field, value in (item.split("=", 1) for item in args.set)}
    config = UnlearningConfig.for_model(args.model, **overrides)
    loaded = load_model(resolve_model_path(args.model, args.cache), torch.device("cpu"))
    model, tokenizer = attach_adapter(loaded.model, None, config), loaded.tokenizer

    batch = UnlearningBatch.from_payloads([quickstart_request()])
    forget = batch.training_probes()
    generic = self_distillation_probes(model, tokenizer, forget, args.generic_margin)
    unnamed = [capital(country, city) for country, city in UNNAMED.items()]
    data = batch.encode(model, tokenizer, [*batch.retain_probes, *generic], config.max_seq_len)
    method = get_method(config.method)(config)
    started = time.monotonic()
    method.prepare(model, data)
    print(f"{config.method} ({overrides or 'profile defaults'}): {len(generic)} generic probes; before: "
          f"kept {hits(model, tokenizer, batch.retain_probes)} unnamed {hits(model, tokenizer, unnamed)} "
          f"generic {hits(model, tokenizer, generic)}", flush=True)

    for step, _ in optimiser_steps(model, method, data, config.model_copy(update={"max_steps": args.steps})):
        if step % args.every == 0:
            print(f"step {step:3d} {time.monotonic() - started:6.0f} s  converged {method.converged(model, data)!s:5} "
                  f"Paris {hits(model, tokenizer, forget)}  kept {hits(model, tokenizer, batch.retain_probes)}  "
                  f"unnamed {hits(model, tokenizer, unnamed)}  generic {hits(model, tokenizer, generic)}", flush=True)
    print("rerun: OMP_NUM_THREADS=2 .venv/bin/python benchmarks/neighbour_dip.py " + shlex.join(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
