#!/usr/bin/env bash
# Downloads the wheels of the benchmarks' public peers (Liger-Kernel, Apple's Cut Cross-Entropy)
# into .whl/ for a lent GPU machine, where nothing can be fetched: its Python is 3.12 and it
# already has their dependencies (torch, Triton).  A run that carries .whl gets them installed
# by scripts/gpu_check.sh; without them the peers' benchmarks are skipped, saying why.
#     bash scripts/peer_wheels.sh    # then run gpu_check.sh with carry [".whl"]
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-"liger-kernel==0.8.5 cut-cross-entropy==25.1.1"}
# shellcheck disable=SC2086  # PEERS is a list of requirements
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux2014_x86_64 -d .whl $PEERS
