#!/usr/bin/env bash
# Trains the four GSC networks on real Speech Commands v0.02 (sparse_keras.data.gsc12v2,
# speaker-disjoint split), seeds 0-4, resumably at the epoch: first the paper's silence
# convention (all-zero clips), then the standard one (recorded background noise).
# Run from the repository root:
#   mkdir -p training/logs && nohup bash training/queue_gsc12v2.sh > training/logs/gsc12v2.log 2>&1 &
# Then: python -m training.aggregate gsc12v2
set -u
networks="sparse_cnn2 dense_cnn2 super_sparse_cnn2 dense_cnn2_dropout"
plan=()
for convention in gsc12v2 gsc12v2_recorded_silence; do
  for seed in 0 1 2 3 4; do
    for network in $networks; do plan+=("${convention}_${network}:$seed"); done
  done
done
exec bash "$(dirname "$0")/run_queue.sh" "${plan[@]}" -- "$@"
