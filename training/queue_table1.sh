#!/usr/bin/env bash
# Trains the Table 1 networks in the order results are most useful: the four main
# networks with seed 0, then with seeds 1 and 2, then the ablations with seed 0.
# Resumable: finished epochs and seeds are skipped. Run from the repository root:
#   nohup bash training/queue_table1.sh > training/logs/table1.log 2>&1 &
set -u
main="mnist_sparse_cnn2 mnist_dense_cnn2 mnist_sparse_cnn1 mnist_dense_cnn1"
ablations="mnist_dense_cnn2_sp3 mnist_sparse_cnn2_d3 mnist_sparse_cnn2_w1 mnist_sparse_cnn2_dsw"
extra_args=("$@")
# Wait for a run of this queue that an earlier copy of it left going (resuming the same
# run twice at once would corrupt its checkpoint).
wait_for_running() { while pgrep -f "training.train --recipe $1" > /dev/null; do sleep 20; done; }
for seed in 0 1 2; do
  for recipe in $main; do
    [ -f "training/results/$recipe/seed$seed.json" ] && continue
    wait_for_running "$recipe"
    python -m training.train --recipe "$recipe" --first-seed "$seed" --seeds 1 --verbose 2 "${extra_args[@]}"
  done
done
for recipe in $ablations; do
  [ -f "training/results/$recipe/seed0.json" ] && continue
  wait_for_running "$recipe"
  python -m training.train --recipe "$recipe" --first-seed 0 --seeds 1 --verbose 2 "${extra_args[@]}"
done
