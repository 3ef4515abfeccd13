#!/usr/bin/env sh
# The CPU run of the unlearning benchmark (docs/benchmark.md, "Latest results"): the tiny Llama trained from
# scratch on the built-in fictitious people, 20 deletion requests in batches of 4 through forgetd's graddiff
# (the worker's unlearn_batch), next to original, gold (retrained) and the full-parameter GA, GradDiff and
# NPO baselines. Measured under 15 minutes on 2 CPU cores, model training included.
#
#   benchmarks/unlearning_cpu.sh [OUT_DIR]        (default bench-cpu; FORGETD=path/to/forgetd to override)
set -eu
exec "${FORGETD:-forgetd}" bench --model tiny --dataset builtin --requests 20 --batch-size 4 \
    --method graddiff --baselines full_ga,full_graddiff,full_npo --seed 0 --device cpu --out "${1:-bench-cpu}"
