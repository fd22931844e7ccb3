#!/usr/bin/env bash
# Builds the addon's CUDA probe (native/cuda) as a small program with the static CUDA runtime,
# exactly as CMakeLists.txt links it into vlmq.node, and runs it: on a GPU machine it must find
# the device and the cuBLAS/cuSOLVER libraries; without a driver it must say so, not crash.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/cuda_probe}
mkdir -p "$(dirname "$out")"
nvcc -std=c++17 -O2 -cudart static -Inative/include -Inative \
  native/tools/cuda_probe.cpp native/cuda/cuda_info.cu native/cuda/dyn/cuda_libraries.cpp -o "$out" -ldl
echo "NEEDED: $(readelf -d "$out" | grep NEEDED | sed -E 's/.*\[(.*)\]/\1/' | tr '\n' ' ')"
"$out"
