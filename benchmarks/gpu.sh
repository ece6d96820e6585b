#!/usr/bin/env bash
# The benchmark table on an accelerator (issue 18, item 4): the TCL epoch at MNIST size
# (500 cycles, batch 20, 784-500-10; target under 1 s), the sparse-network TCL up to 10^5
# nodes, full Fig. 4C and Fig. 6B. Uses the JAX (CUDA) already installed on the machine.
# Writes benchmarks/results/gpu.json and regenerates docs/benchmarks.md (CPU and GPU tables);
# copies both to $OUT when set (the device tool's output folder).
#
#   bash benchmarks/gpu.sh            # about 10 minutes on an H200
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q --no-deps --no-build-isolation -e .
python -c "import jax; assert jax.default_backend() == 'gpu', jax.devices()"
python benchmarks/run_all.py --device gpu --only tcl tcl_sparse fig4c fig6b
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu.json docs/benchmarks.md "$OUT"/; fi
