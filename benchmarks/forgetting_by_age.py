"""How well each part of a stream stays forgotten, version by version: membership evidence and truth ratio
of the forgotten people in parts of the stream (fifths unless told), against the never-seen people's.

Reads a finished ``forgetd bench`` run (its ``report.json`` and the versions it kept, ``adapters/METHOD/vK``).
For the original, gold and each version asked, and for each part of the forgotten people already
requested by then: the Min-K% evidence (mean NLL of their statements' name tokens, and of the other least
likely tokens) and their facts' truth ratio median; first the never-seen people's evidence on the same
model. A part that drifts towards the original's figures is coming back; a fresh part that starts there
was never forgotten as well (docs/benchmark.md, sixteenth round).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/forgetting_by_age.py --run OUT --original CACHE/tiny-HASH \\
        --gold CACHE/tiny-HASH --versions 10 20 30 40 50 [--method fit] [--parts 5]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from forgetd.bench.data import load_dataset
from forgetd.bench.evaluate import statements_min_k
from forgetd.eval.lm import CausalLM
from forgetd.eval.truth_ratio import truth_ratios
from forgetd.models.loading import load_model
from forgetd.models.people import Person


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the bench run's --out folder")
    parser.add_argument("--original", type=Path, required=True, help="the run's original model folder")
    parser.add_argument("--gold", type=Path, required=True, help="the run's gold model folder")
    parser.add_argument("--versions", type=int, nargs="+", required=True, help="the versions to ask")
    parser.add_argument("--method", default="fit", help="whose versions to read (a forgetd method of the run)")
    parser.add_argument("--parts", type=int, default=5, help="parts the stream is cut into")
    args = parser.parse_args()
    config = json.loads((args.run / "report.json").read_text())["config"]
    data = load_dataset(config["dataset"], config["requests"], config["retain"], config["heldout"], config["seed"])
    size = -(-len(data.forget) // args.parts)
    parts = [data.forget[i:i + size] for i in range(0, len(data.forget), size)]
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print("model: never seen name/other | each part of the stream: name/other/truth ratio median")
    gold = load_model(args.gold, torch.device("cpu"))
    print(_row("gold", gold.model, gold.tokenizer, data.heldout, parts))
    base = load_model(args.original, torch.device("cpu"))
    print(_row("original", base.model, base.tokenizer, data.heldout, parts))
    for k in args.versions:
        model = PeftModel.from_pretrained(base.model, args.run / "adapters" / args.method / f"v{k}")
        requested = min(len(data.forget), k * config["batch_size"])
        print(_row(f"v{k}", model, base.tokenizer, data.heldout, _requested(parts, requested)))
        base.model = model.unload()  # the bare base again, for the next version


def _requested(parts: list[list[Person]], count: int) -> list[list[Person]]:
    """``parts`` cut to the first ``count`` people of the stream (empty parts where none was requested)."""
    kept, seen = [], 0
    for part in parts:
        kept.append(part[:max(0, count - seen)])
        seen += len(part)
    return kept


def _row(label: str, model: CausalLM, tokenizer: PreTrainedTokenizerBase, never_seen: Sequence[Person],
         parts: list[list[Person]]) -> str:
    held = statements_min_k(model, tokenizer, never_seen)
    cells = [f"{held.name_nll:.2f}/{held.other_nll:.2f}"]
    for people in parts:
        if not people:
            cells.append("-")
            continue
        evidence = statements_min_k(model, tokenizer, people)
        ratio = statistics.median(truth_ratios(model, tokenizer, [fact for p in people for fact in p.facts]))
        cells.append(f"{evidence.name_nll:.2f}/{evidence.other_nll:.2f}/{ratio:.2f}")
    return f"{label}: " + " | ".join(cells)


if __name__ == "__main__":
    main()
