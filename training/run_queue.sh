#!/usr/bin/env bash
# Runs training items one at a time, resumably: the shared loop behind the queue_*.sh plans.
# Usage: bash training/run_queue.sh RECIPE:SEED [RECIPE:SEED ...] [-- EXTRA TRAIN ARGS]
# A finished item (its result JSON exists) is skipped; an interrupted one resumes from its
# last checkpoint, because `training.train` resumes at the epoch.
set -u
items=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; break; fi
  items+=("$1"); shift
done
extra_args=("$@")
# Wait for a run that an earlier copy of a queue left going: resuming the same run twice
# at once would corrupt its checkpoint.
wait_for_running() { while pgrep -f "training.train --recipe $1 --first-seed $2 " > /dev/null; do sleep 20; done; }
for item in "${items[@]}"; do
  case "$item" in
    *:*) ;;
    *) echo "run_queue.sh: item '$item' is not RECIPE:SEED" >&2; exit 2 ;;
  esac
  recipe="${item%%:*}" seed="${item##*:}"
  [ -f "training/results/$recipe/seed$seed.json" ] && continue
  wait_for_running "$recipe" "$seed"
  python -m training.train --recipe "$recipe" --first-seed "$seed" --seeds 1 --verbose 2 "${extra_args[@]}"
done
