"""Which forgotten answers come back over a stream, and whether the update that let them back replayed them.

Reads a finished ``forgetd bench`` run (its ``report.json`` and the versions it kept, ``adapters/METHOD/vK``)
and asks every published version all the probes of every request forgotten before it: greedy recall of
version k against version k-1, each earlier probe counted as replayed by update k or not (the run's own
batches, rebuilt from its config). Update k's verification sees only the probes it replays; this sees
the rest too (docs/benchmark.md, fourteenth round).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/replay_churn.py --run OUT --original CACHE/tiny-HASH
        [--method fit] [--every 4]

``--original`` is the run's original model, the folder its cache holds (the progress line "models:
training the original model (NAME)" names it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections import Counter
from pathlib import Path

import torch
from peft import PeftModel

from forgetd.bench.data import load_dataset
from forgetd.bench.stream import request_batches
from forgetd.eval.probes import probe_hits
from forgetd.models.loading import load_model
from forgetd.payload import Probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the bench run's --out folder")
    parser.add_argument("--original", type=Path, required=True, help="the run's original model folder")
    parser.add_argument("--method", default="fit", help="whose versions to read (a forgetd method of the run)")
    parser.add_argument("--every", type=int, default=4, help="print the earlier people's recall every N versions")
    args = parser.parse_args()
    config = json.loads((args.run / "report.json").read_text())["config"]
    data = load_dataset(config["dataset"], config["requests"], config["retain"], config["heldout"], config["seed"])
    batches = request_batches(data, config["batch_size"], config["neighbours"], config["seed"], config["replay"])
    hits = recalled_by_version(args.run / "adapters" / args.method, args.original,
                               [batch.forget_probes for batch in batches])
    came_back, forgotten_again, asked = Counter[str](), Counter[str](), Counter[str]()
    for k in range(2, len(batches) + 1):
        if k not in hits or k - 1 not in hits:
            continue  # an unpublished batch: no version to compare
        replayed = {(p.prompt, p.completion) for p in batches[k - 1].replay_probes}
        earlier = [probe for batch in batches[:k - 1] for probe in batch.forget_probes]
        for i, probe in enumerate(earlier):
            kind = "replayed" if (probe.prompt, probe.completion) in replayed else "not replayed"
            asked[kind] += 1
            came_back[kind] += hits[k][i] and not hits[k - 1][i]
            forgotten_again[kind] += hits[k - 1][i] and not hits[k][i]
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    for kind in ("replayed", "not replayed"):
        print(f"{kind}: {asked[kind]} earlier probes asked, {came_back[kind]} came back, "
              f"{forgotten_again[kind]} forgotten again")
    print("earlier people's recall, version: " + " ".join(
        f"v{k} {_share(hits[k][:-len(batches[k - 1].forget_probes)])}"
        for k in range(2, len(batches) + 1, args.every) if k in hits))


def recalled_by_version(versions: Path, original: Path, own_probes: list[list[Probe]]) -> dict[int, list[bool]]:
    """For each published version k (``versions/vK``), greedy recall of every probe of batches 1..k, in order."""
    base = load_model(original, torch.device("cpu"))
    hits = {}
    for k in range(1, len(own_probes) + 1):
        if not (versions / f"v{k}").is_dir():
            continue
        model = PeftModel.from_pretrained(base.model, versions / f"v{k}")
        hits[k] = probe_hits(model, base.tokenizer, [probe for probes in own_probes[:k] for probe in probes])
        base.model = model.unload()  # the bare base again, for the next version
    return hits


def _share(flags: list[bool]) -> str:
    return f"{sum(flags) / len(flags):.2f}" if flags else "-"


if __name__ == "__main__":
    main()
