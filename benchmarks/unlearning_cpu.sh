#!/usr/bin/env sh
# The CPU runs of the unlearning benchmark (docs/benchmark.md, "Latest results"): the tiny Llama trained from
# scratch on the built-in fictitious people, 50 sequential deletion requests through forgetd's default
# method fit (the worker's unlearn_batch, replaying earlier requests' probes and neighbours, capped), at
# batch size 8 and 1, next to original, gold (retrained), forgetd's LoRA graddiff and the full-parameter
# GA, GradDiff and NPO baselines; then forgetd's other LoRA methods at batch size 8. Same seed, same
# cached original and gold models (and a second gold, seed + 1: the noise floor of every comparison with gold).
# About 1 h 30 min on 2 CPU cores (the original model alone: 6 min on quiet cores).
#
#   benchmarks/unlearning_cpu.sh [OUT_DIR]        (default bench-cpu; FORGETD=path/to/forgetd to override)
set -eu
out="${1:-bench-cpu}"
run() { "${FORGETD:-forgetd}" bench --model tiny --dataset builtin --requests 50 --seed 0 --device cpu \
    --cache "$out/cache" "$@"; }
run --batch-size 8 --replay 300 --method fit --baselines graddiff,full_ga,full_graddiff,full_npo --out "$out/bs8"
run --batch-size 1 --replay 300 --method fit --baselines graddiff,full_ga,full_graddiff,full_npo --out "$out/bs1"
run --batch-size 8 --replay 300 --method simnpo --baselines npo,gs_lora,rmu,ssd,ga --out "$out/bs8-other"
