"""``forgetd bench``: replay deletion requests through forgetd's unlearning and compare with retraining.

The metrics come from :mod:`forgetd.eval` (shared with the worker's verification); this package only
prepares data and models, replays the stream and writes the report. Nothing here is imported by the
worker, the API or serving.
"""

from forgetd.bench.config import BenchConfig
from forgetd.bench.data import BenchDataset, DatasetError, load_dataset, read_jsonl
from forgetd.bench.runner import run_benchmark

__all__ = ["BenchConfig", "BenchDataset", "DatasetError", "load_dataset", "read_jsonl", "run_benchmark"]
