#!/usr/bin/env bash
# Seeds 1 and 2 of the four Table 1 ablation rows (seed 0 is in training/results/),
# one run at a time (resumable; skips finished runs). Then: python -m training.aggregate table1
set -u
for recipe in mnist_dense_cnn2_sp3 mnist_sparse_cnn2_d3 mnist_sparse_cnn2_w1 mnist_sparse_cnn2_dsw; do
  for seed in 1 2; do
    [ -f "training/results/$recipe/seed$seed.json" ] && continue
    python -m training.train --recipe "$recipe" --first-seed "$seed" --seeds 1 --verbose 2 "$@"
  done
done
