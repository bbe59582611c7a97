#!/usr/bin/env bash
# Train smollm2-135m on this node's 8 GPUs: torchrun starts 8 ranks, FSDP2 shards the model over them.
#   bash launch/torchrun.sh [RECIPE [key.path=value ...]]   (from the repository root, smollab's environment active)
# RECIPE defaults to recipes/smollm2-135m.yaml; the overrides are `smollab train`'s, e.g. optim.lr=3e-4.
# Each start validates the recipe and the rank count (python -m smollab.launch preflight), then resumes the
# run from its newest checkpoint, starts it if there is none, or restarts one that died before its first.
# Rendered by `smollab launch recipes/smollm2-135m.yaml --scheduler torchrun --nodes 1 --gpus-per-node 8` (smollab/launch.py).
set -euo pipefail
gpus_per_node=8
recipe=${1:-recipes/smollm2-135m.yaml}
if [ $# -gt 0 ]; then shift; fi
run_flag=$(python -m smollab.launch preflight --world "$gpus_per_node" "$recipe" "$@")
exec torchrun --standalone --nnodes 1 --nproc_per_node "$gpus_per_node" \
  -m smollab train "$recipe" "$@" ${run_flag:+"$run_flag"}
