#!/usr/bin/env bash
# One prepared GPU session (run through the device tool; never needed by tests or CI):
#  1. retrieval benchmarks on the GPU (constrained vs unconstrained, batched vs one-by-one);
#  2. the GPU recipes' code paths (bf16, gradient checkpointing, LoRA, GRPO) with --dry_run on CUDA,
#     using tiny stand-ins for the named checkpoints (nothing can be downloaded there either).
# Wheels for packages the device image lacks are carried in .whl/ (not committed), made here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 -d .whl \
#     transformers==5.24.0 trl==1.16.0 peft==0.21.2 datasets==5.2.0 huggingface-hub==2.4.0 tokenizers==0.23.3 \
#     dill==0.4.1 multiprocess==0.70.19 httpx2==2.16.2 httpcore2==2.16.2 click==8.5.1 regex==2026.11.19 \
#     truststore==0.10.5 idna==3.20 anyio==4.16.0 h11==0.16.0
set -uo pipefail
OUT=${OUT:-outputs/gpu_check}; mkdir -p "$OUT"
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "${TMPDIR:-/tmp}/f2rvlm-site" .whl/*.whl || exit 1
    export PYTHONPATH="${TMPDIR:-/tmp}/f2rvlm-site"
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/modeling HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false F2RVLM_EMBEDDER=hashing
PY=${PY:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers, trl, peft, datasets; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'datasets', datasets.__version__)" 2>&1 | tee -a "$OUT/gpu.txt"
status=0
echo "== retrieval benchmark (cuda)"
timeout 240 $PY benchmarks/bench_retrieval.py --sizes ${SIZES:-test,small,base} --reps 3 --device cuda --no-memory --no-write > "$OUT/bench_retrieval_cuda.md" 2>&1 || { echo "bench failed"; status=1; }
tail -40 "$OUT/bench_retrieval_cuda.md"
for stage in sft grpo; do
    echo "== $stage dry run on cuda (qwen2-vl-7b recipe, tiny stand-in)"
    timeout 150 $PY recipes/$stage.py --config recipes/qwen2-vl-7b/$stage.yaml --dry_run true --report_to none \
        --output_dir "${TMPDIR:-/tmp}/gpu_dry_$stage" > "$OUT/dry_$stage.log" 2>&1 || { echo "$stage dry run failed"; status=1; }
    grep -E "bf16|cuda|done on process|Error|error" "$OUT/dry_$stage.log" | tail -8
done
exit $status
