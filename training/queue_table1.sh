#!/usr/bin/env bash
# Retrains Table 1 with the runner that matches the released code (issue 18), one run at
# a time, in the order results are most useful:
#   seed 0 of the four main networks (the zoo checkpoints), seeds 1-9 of Sparse/Dense CNN-2
#   (the goals and the pruning comparison rest on them), seeds 1-4 of CNN-1, then seeds 0-2
#   of the four ablations.
# Resumable at the epoch (training/run_queue.sh). Run from the repository root:
#   mkdir -p training/logs && nohup bash training/queue_table1.sh > training/logs/table1.log 2>&1 &
# Then: python -m training.aggregate table1 && python -m training.aggregate plots
set -u
main2="mnist_sparse_cnn2 mnist_dense_cnn2"
main1="mnist_sparse_cnn1 mnist_dense_cnn1"
ablations="mnist_dense_cnn2_sp3 mnist_sparse_cnn2_d3 mnist_sparse_cnn2_w1 mnist_sparse_cnn2_dsw"
plan=()
for r in $main2 $main1; do plan+=("$r:0"); done
for seed in 1 2 3 4 5 6 7 8 9; do for r in $main2; do plan+=("$r:$seed"); done; done
for seed in 1 2 3 4; do for r in $main1; do plan+=("$r:$seed"); done; done
for seed in 0 1 2; do for r in $ablations; do plan+=("$r:$seed"); done; done
exec bash "$(dirname "$0")/run_queue.sh" "${plan[@]}" -- "$@"
