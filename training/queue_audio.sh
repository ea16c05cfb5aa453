#!/usr/bin/env bash
# Trains the four GSC networks on FSDD (real spoken digits), seeds 0-2, resumably
# (training/run_queue.sh). Run from the repository root:
#   mkdir -p training/logs && nohup bash training/queue_audio.sh > training/logs/audio.log 2>&1 &
# Then: python -m training.aggregate fsdd
set -u
plan=()
for seed in 0 1 2; do
  for network in sparse_cnn2 dense_cnn2 super_sparse_cnn2 dense_cnn2_dropout; do
    plan+=("fsdd_${network}:$seed")
  done
done
exec bash "$(dirname "$0")/run_queue.sh" "${plan[@]}" -- "$@"
