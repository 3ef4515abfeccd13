"""Writing a benchmark's report: ``report.json`` (everything), ``report.md`` (one table), ``curves.png``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from forgetd.bench.targets import QUALITY_TARGETS

# (report.json key, row label, format) of the markdown table's rows, in order.
TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("forget_recall", "forget recall (prompt or paraphrase)", "ratio"),
    ("forget_recall_prompt", "  from the prompt", "ratio"),
    ("forget_recall_paraphrase", "  from the paraphrase", "ratio"),
    ("forget_efficacy", "forget efficacy", "ratio"),
    ("retain_utility", "retain utility", "ratio"),
    ("general_utility", "general utility", "ratio"),
    ("bystander_utility", "bystander utility (people not yet requested, mean over versions)", "ratio"),
    ("forget_quality", "forget quality (KS p vs gold)", "p"),
    ("truth_ratio_median", "truth ratio, median", "ratio"),
    ("mia_auc", "Min-K% MIA AUC (gold: next row)", "ratio"),
    ("mia_auc_gold", "  gold's AUC", "ratio"),
    ("mia_name_gap", "  names: NLL forgotten - never seen (gold: next row)", "signed"),
    ("mia_name_gap_gold", "  gold's", "signed"),
    ("mia_other_gap", "  rest of Min-K%: NLL forgotten - never seen (gold: next row)", "signed"),
    ("mia_other_gap_gold", "  gold's", "signed"),
    ("extraction_strength", "extraction strength", "ratio"),
    ("relearn_recovery", "relearn recovery (held-back recall after attack)", "ratio"),
    ("relearn_recall_before", "  held-back recall before the attack", "ratio"),
    ("relearn_recovery_gold", "  gold under the same attack", "ratio"),
    ("quant_recovery", "quant recovery (recall quantised - before)", "signed"),
    ("wall_s_per_request", "wall s / request", "seconds"),
    ("cost_growth", "  s / request, last 10 over first 10 (full batches)", "ratio"),
    ("cpu_s_per_request", "process CPU s / request", "seconds"),
    ("gpu_s_per_request", "GPU s / request", "seconds"),
    ("peak_memory_bytes", "peak memory (RSS)", "bytes"),
    ("peak_gpu_memory_bytes", "peak GPU memory", "bytes"),
    ("adapter_bytes", "update size (adapter or weights)", "bytes"),
    ("requests_published", "requests published", "int"),
)


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write the three files into ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    (out / "report.md").write_text(markdown(report))
    plot_curves(report, out / "curves.png")


def markdown(report: dict[str, Any]) -> str:
    """The report as one markdown table, methods side by side (gold and original included)."""
    methods: dict[str, dict[str, Any]] = report["methods"]
    names = list(methods)
    lines = [f"# forgetd bench: {report['config']['model']} on {report['dataset']['source']}", "",
             f"`{report['command']}`", "",
             f"{report['dataset']['forget_subjects']} forget subjects ({report['dataset']['forget_facts']} facts) "
             f"as {report['config']['requests']} requests in batches of {report['config']['batch_size']}; "
             f"{report['dataset']['retain_subjects']} retain and {report['dataset']['heldout_subjects']} never-seen "
             f"subjects. Device {report['environment']['device']}, torch {report['environment']['torch']}; "
             f"general utility is the {report['general_metric'].replace('_', ' ')}; quantisation "
             f"{report['quantization']}; {report['wall_s']:.0f} s in all.", "",
             "| metric | " + " | ".join(names) + " |",
             "| --- | " + " | ".join("---:" for _ in names) + " |"]
    for key, label, kind in TABLE_ROWS:
        lines.append(f"| {label} | " + " | ".join(_format(methods[name].get(key), kind) for name in names) + " |")
    lines += ["", "Kinds: " + "; ".join(f"**{name}**: {methods[name]['kind']}" for name in names) + ".", ""]
    if "targets" in report:
        lines += _targets_section(report["targets"], report["config"]["method"])
    return "\n".join(lines)


def _targets_section(targets: dict[str, list[dict[str, Any]]], method: str) -> list[str]:
    """Issue 4's quality targets, a column per stream method, then the method under test against the baselines."""
    names = list(targets)
    quality = [target.target for target in QUALITY_TARGETS]
    lines = ["## Issue 4's targets", "", "| target | " + " | ".join(names) + " |",
             "| --- | " + " | ".join("---" for _ in names) + " |"]
    for target in quality:
        cells = [next((_verdict(v) for v in targets[name] if v["target"] == target), "n/a") for name in names]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    against = [v for v in targets[method] if v["target"] not in quality]
    if against:
        lines += ["", f"**{method}** against the baselines of this run:", "", "| target | value | bound | met |",
                  "| --- | ---: | ---: | --- |"]
        lines += [f"| {v['target']} | {_number(v['value'])} | {_number(v['bound'])} | {_met(v)} |" for v in against]
    return [*lines, ""]


def _verdict(verdict: dict[str, Any]) -> str:
    sign = "<=" if verdict["at_most"] else ">="
    return f"{_number(verdict['value'])} ({sign} {_number(verdict['bound'])}) {_met(verdict)}"


def _met(verdict: dict[str, Any]) -> str:
    return "met" if verdict["met"] else "**missed**"


def _number(value: float) -> str:
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.001 else f"{value:.2g}"  # p-values can be tiny


def plot_curves(report: dict[str, Any], path: Path) -> None:
    """Forget efficacy, retain utility and bystander utility against requests processed, a line per method."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for name, points in report["curves"].items():
        style = {"linestyle": "--", "color": "black"} if name == "gold" else {"marker": "o"}
        x = [p["requests"] for p in points]
        axes[0].plot(x, [p["forget_efficacy"] for p in points], label=name, **style)
        axes[1].plot(x, [p["retain_utility"] for p in points], label=name, **style)
        if name != "gold":  # gold never knew the people not yet requested
            bystanders = [(n, p["bystander_utility"]) for n, p in zip(x, points, strict=True)
                          if p["bystander_utility"] is not None]
            axes[2].plot([n for n, _ in bystanders], [u for _, u in bystanders], label=name, **style)
    titles = ("forget efficacy (requests so far)", "retain utility", "bystander utility (not yet requested)")
    for ax, title in zip(axes, titles, strict=True):
        ax.axhline(0.0 if ax is axes[0] else 1.0, color="grey", linestyle=":", label="original")
        ax.set_xlabel("requests processed")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"forgetd bench: {report['config']['model']}, batches of {report['config']['batch_size']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _format(value: Any, kind: str) -> str:
    if value is None:
        return "n/a"
    if kind == "int":
        return str(int(value))
    if kind == "bytes":
        return _bytes(int(value))
    if kind == "seconds":
        return f"{value:.2f}"
    if kind == "signed":
        return f"{value:+.3f}"
    if kind == "p":
        return f"{value:.3g}" if value < 0.001 else f"{value:.3f}"
    return f"{value:.3f}" if math.isfinite(value) else str(value)


def _bytes(value: int) -> str:
    if value < 1024:
        return f"{value} B"
    size = float(value)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"
