"""The whole benchmark on a toy scale: two requests, a very small model, every method and every field."""

from __future__ import annotations

import io
import json
import math
import re

import pytest
from typer.testing import CliRunner

from forgetd.bench import BenchConfig, run_benchmark
from forgetd.bench.progress import Progress
from forgetd.bench.report import TABLE_ROWS
from forgetd.bench.runner import NO_STREAM
from forgetd.bench.targets import QUALITY_TARGETS
from forgetd.cli import app
from forgetd.models.tiny import TinyTraining

# Small enough to memorise four people in a few seconds on two cores.
TOY = TinyTraining(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128,
                   learning_rate=5e-3, max_steps=400, check_every=25)
METHODS = ["original", "gold", "gold_reseeded", "npo", "full_ga", "full_graddiff", "full_npo"]


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    config = BenchConfig(requests=2, batch_size=1, method="npo", retain=2, heldout=2, neighbours=4,
                         out=root / "out", cache=root / "cache", device="cpu")
    lines = io.StringIO()
    report = run_benchmark(config, root / "models", Progress(lines), tiny_training=TOY)
    return config, report, lines.getvalue()


@pytest.mark.slow
def test_every_method_has_every_field(toy_run):
    _, report, _ = toy_run
    assert list(report["methods"]) == METHODS
    for name, row in report["methods"].items():
        for key, _, _ in TABLE_ROWS:
            value = row[key]
            if key in NO_STREAM and name in ("original", "gold", "gold_reseeded"):  # no stream was replayed
                assert value is None
                continue
            assert isinstance(value, int | float) and math.isfinite(value), (name, key, value)
    assert report["general_metric"] == "heldout_perplexity_ratio"
    assert report["methods"]["original"]["forget_efficacy"] == 0.0
    assert report["methods"]["original"]["retain_utility"] == 1.0
    assert report["methods"]["gold"]["forget_quality"] == 1.0  # gold against itself
    assert report["methods"]["npo"]["adapter_bytes"] > 0


@pytest.mark.slow
def test_curves_have_a_point_per_batch_and_the_files_are_written(toy_run):
    config, report, _ = toy_run
    for name in ["npo", "full_ga", "full_graddiff", "full_npo", "gold"]:
        assert [p["requests"] for p in report["curves"][name]] == [1, 2]
    assert [b["batch"] for b in report["batches"]["npo"]] == [1, 2]
    # after the first request one person is still to come; after the last, nobody
    assert [p["bystander_utility"] is None for p in report["curves"]["npo"]] == [False, True]
    assert report["methods"]["npo"]["bystander_utility"] == report["curves"]["npo"][0]["bystander_utility"]
    assert json.loads((config.out / "report.json").read_text())["methods"].keys() == report["methods"].keys()
    table = (config.out / "report.md").read_text()
    assert "| metric | original | gold | gold_reseeded | npo | full_ga | full_graddiff | full_npo |" in table
    assert (config.out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_report_judges_every_stream_method_on_issue_4s_targets(toy_run):
    config, report, _ = toy_run
    assert list(report["targets"]) == ["npo", "full_ga", "full_graddiff", "full_npo"]
    against = [v["target"] for v in report["targets"]["npo"]][len(QUALITY_TARGETS):]
    assert against[-1] == "compute per request <= 0.1 x full_npo's"  # on the CPU: CPU seconds
    assert report["targets"]["npo"][-1]["value"] == report["methods"]["npo"]["cpu_s_per_request"]
    table = (config.out / "report.md").read_text()
    assert "| target | npo | full_ga | full_graddiff | full_npo |" in table
    assert "**npo** against the baselines of this run:" in table


@pytest.mark.slow
def test_progress_shows_models_batches_and_metrics_but_no_text(toy_run):
    _, report, lines = toy_run
    assert "models: training the original model" in lines
    assert "npo: batch 2/2 (2 requests)" in lines
    assert "full_npo: truth ratios" in lines
    from forgetd.bench.data import load_dataset

    data = load_dataset("builtin", 2, 2, 2, 0)
    secrets = {word for p in data.forget + data.retain for f in p.facts for word in [f.answer, *p.name.split()]}
    leaked = {s for s in secrets if re.search(rf"\b{re.escape(s)}\b", lines)}
    assert not leaked
    text = json.dumps(report)
    assert not {s for s in secrets if re.search(rf"\b{re.escape(s)}\b", text)}


def test_cli_reports_a_bad_dataset_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGETD_DATA_DIR", str(tmp_path / "data"))
    path = tmp_path / "bad.jsonl"
    path.write_text('{"subject": "A", "facts": []}\n')
    result = CliRunner().invoke(app, ["bench", "--dataset", str(path), "--out", str(tmp_path / "out"),
                                      "--device", "cpu"])
    assert result.exit_code == 1
    assert f"{path}:1: facts: List should have at least 1 item" in result.output


@pytest.mark.parametrize(("args", "message"), [(["--method", "nope"], "unknown method 'nope'"),
                                               (["--baselines", "full_sgd"], "unknown baselines ['full_sgd']"),
                                               (["--requests", "0"], "requests"),
                                               (["--method-seed", "-1"], "method_seed")])
def test_cli_refuses_bad_options(tmp_path, args, message):
    result = CliRunner().invoke(app, ["bench", "--out", str(tmp_path), *args])
    assert result.exit_code == 1
    assert message in result.output


def test_the_reported_command_reruns_the_methods_own_seed():
    from forgetd.bench.runner import _command

    assert "--seed 2 --method-seed 5 --out" in _command(BenchConfig(seed=2, method_seed=5))
    assert "--method-seed" not in _command(BenchConfig(seed=2))


def test_bystander_utility_is_the_mean_over_the_versions_that_had_people_still_to_come():
    from forgetd.bench.evaluate import CurvePoint, bystander_utility

    def point(requests: int, utility: float | None) -> CurvePoint:
        return CurvePoint(requests, 0.0, 1.0, 1.0, 1.0, utility, utility)

    assert bystander_utility([point(1, 1.0), point(2, 0.5), point(3, None)]) == 0.75
    assert bystander_utility([point(3, None)]) is None
