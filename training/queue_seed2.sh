#!/usr/bin/env bash
# Seed 2 of the CNN-2 pair, run beside queue_table1.sh to finish the sparse-vs-dense
# comparison sooner (resumable; skips finished runs).
set -u
wait_for_running() { while pgrep -f "training.train --recipe $1 --first-seed 2" > /dev/null; do sleep 20; done; }
for recipe in mnist_dense_cnn2 mnist_sparse_cnn2; do
  [ -f "training/results/$recipe/seed2.json" ] && continue
  wait_for_running "$recipe"
  python -m training.train --recipe "$recipe" --first-seed 2 --seeds 1 --verbose 2 "$@"
done
