#!/usr/bin/env bash
# Compile-check every torch-free CUDA source (csrc/<op>/core_*.cu) with nvcc, for sm_80 and sm_90
# (compile only: no GPU and no torch needed).  Fails on the first compile error.
#
#   NVCC=/path/to/nvcc IGRSR_CUDA_CHECK_ARCHS="80 90" bash scripts/check_cuda_sources.sh
set -euo pipefail
cd "$(dirname "$0")/.."

nvcc=${NVCC:-nvcc}
archs=${IGRSR_CUDA_CHECK_ARCHS:-"80 90"}
objects=$(mktemp -d)
trap 'rm -rf "$objects"' EXIT

shopt -s nullglob
sources=(csrc/*/core_*.cu)
if [ ${#sources[@]} -eq 0 ]; then
    echo "no CUDA sources found (csrc/*/core_*.cu)" >&2
    exit 1
fi

"$nvcc" --version | tail -n 1
for source in "${sources[@]}"; do
    for arch in $archs; do
        echo "nvcc -c ${source} for sm_${arch}"
        "$nvcc" -std=c++17 -O3 -c "$source" -I "$(dirname "$source")" \
            -gencode "arch=compute_${arch},code=sm_${arch}" \
            -Xcompiler -Wall,-Wextra \
            -o "${objects}/$(basename "$(dirname "$source")")_$(basename "$source" .cu).sm_${arch}.o"
    done
done
echo "CUDA sources compile: ${#sources[@]} file(s) × sm_${archs// /, sm_}"
