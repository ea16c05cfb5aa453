#!/usr/bin/env bash
# Trains the three GSC architectures on FSDD (real spoken digits), seeds 0-2, resumably.
#   nohup bash training/queue_audio.sh > training/logs/audio.log 2>&1 &
set -u
extra_args=("$@")
# Wait for a run of this queue that an earlier copy of it left going (resuming the same
# run twice at once would corrupt its checkpoint).
wait_for_running() { while pgrep -f "training.train --recipe $1" > /dev/null; do sleep 20; done; }
for seed in 0 1 2; do
  for recipe in fsdd_sparse_cnn2 fsdd_dense_cnn2 fsdd_super_sparse_cnn2; do
    [ -f "training/results/$recipe/seed$seed.json" ] && continue
    wait_for_running "$recipe"
    python -m training.train --recipe "$recipe" --first-seed "$seed" --seeds 1 --verbose 2 "${extra_args[@]}"
  done
done
