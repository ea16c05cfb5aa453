#!/usr/bin/env bash
# More seeds of the four main Table 1 networks (the paper averages 10), one run at a
# time, after queue_ablations.sh (resumable; skips finished runs):
#   bash training/queue_more_seeds.sh [LAST_SEED]     (default 6: seeds 3..6)
# Then: python -m training.aggregate table1 && python -m training.aggregate plots
set -u
last_seed="${1:-6}"
while pgrep -f queue_ablations.sh > /dev/null; do sleep 30; done
for seed in $(seq 3 "$last_seed"); do
  for recipe in mnist_sparse_cnn2 mnist_dense_cnn2 mnist_sparse_cnn1 mnist_dense_cnn1; do
    [ -f "training/results/$recipe/seed$seed.json" ] && continue
    python -m training.train --recipe "$recipe" --first-seed "$seed" --seeds 1 --verbose 2
  done
done
