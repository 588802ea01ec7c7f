#!/usr/bin/env bash
# One GPU check for a lent device machine (H100/H200; Python 3.12 with torch, jax, numpy there).
# The project's pure-Python dependencies missing there travel as wheels in .whl/ (built
# beforehand with pip wheel); figures land in $OUT as JSON lines.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, jax; print('torch', torch.__version__, torch.cuda.is_available(), 'jax', jax.__version__, jax.devices())"

run() {  # name, timeout, command...
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$@" 2>"$OUT/$name.err" | tee "$OUT/$name.json"
  tail -3 "$OUT/$name.err"
}
run throughput_b256 60 python3 benchmarks/throughput.py --device cuda --batch-size 256 --n-cells 20000 --epochs 3
# issue 16's GPU step: the package against a bare torch loop of the same network (bare_loop.py), side by side
run throughput_b4096_vs_bare 120 python3 benchmarks/throughput.py --device cuda --batch-size 4096 --n-cells 200000 --epochs 3 --compare traced,bare
run throughput_b8192 90 python3 benchmarks/throughput.py --device cuda --batch-size 8192 --n-cells 200000 --epochs 3
run throughput_b32768 90 python3 benchmarks/throughput.py --device cuda --batch-size 32768 --n-cells 200000 --epochs 3
if [ -n "${ALIGN_ARGS:-}" ]; then
  # shellcheck disable=SC2086
  run alignment_gpu 200 python3 benchmarks/alignment.py $ALIGN_ARGS
fi
