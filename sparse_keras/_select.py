"""Winner selection on the CPU: the k largest boosted values of each sample in linear time.

Two Numba kernels share one radix select (`_kth_largest`):
- `winner_mask` / `winner_mask_serial`, the training-time selection of `KWinners`
  (used through `sparse_keras.layers.winner_selection`): a 0/1 mask and the winners'
  counts per channel for the duty cycles, the batch split over Numba's threads or
  on the calling thread;
- `all_finite`, the training path's check that a layer's inputs hold no NaN or Inf;
- `kwinners`, the inference-time selection of the sparse inference path
  (`sparse_keras.compute.inference`): the winners as `(idx, val)`, ascending.

Both pick exactly the set `tf.math.top_k` picks: the k largest boosted values, ties
going to the lower index. This module is on the bottom floor: the layers and
`sparse_keras.compute` import it, and it imports neither.
"""

from __future__ import annotations

import numba
import numpy as np

# `contract` lets LLVM fuse multiply-adds into FMA instructions, as oneDNN does; the
# other fast-math flags (reassociation, no-NaN assumptions) stay off. The inference
# kernels (`sparse_keras.compute._kernels`) compile with the same options.
JIT_OPTIONS = {"nogil": True, "cache": True, "fastmath": {"contract"}}


@numba.njit(**JIT_OPTIONS)
def _select_digit(counts, top, remaining):
    """The largest digit (at most `top`) whose bucket holds the `remaining`-th largest
    key, and what is still to be taken from within that bucket."""
    digit = top
    while counts[digit] < remaining:
        remaining -= counts[digit]
        digit -= 1
    return digit, remaining


@numba.njit(**JIT_OPTIONS)
def _kth_largest(keys, k, counts, candidates, guess):
    """The k-th largest of `keys` (uint32) by a most-significant-digit radix select.

    If `guess` (a key) is at or below the answer, i.e. at least k keys are
    `>= guess`, only those keys take part: with the previous sample's answer
    lowered by half an octave as the guess this is usually a small fraction of
    `keys`. Otherwise (or with `guess == 0`) all of them do. The first pass
    histograms the top 11 bits; only the keys sharing the winning top digit are
    kept, and three short passes over them settle 7 bits each. Linear time, no sort.

    Args:
        keys: uint32 `[n]`, order-preserving keys (see `_order_keys`).
        k: Rank wanted, `1 <= k <= n`.
        counts: int64 `[2048]` scratch.
        candidates: uint32 `[n]` scratch.
        guess: A key believed to be at or below the answer, or 0 for none.

    Returns:
        `(threshold, take, equal)`: the k-th largest key; how many keys equal to it
        belong to the top k (all keys above it do); how many keys equal it.
    """
    size = 0
    if guess > 0:
        for i in range(keys.shape[0]):
            # Branch-free compaction: always write, advance only on a match.
            key = keys[i]
            candidates[size] = key
            size += key >= guess
    if size >= k:
        source = candidates
    else:
        source = keys
        size = keys.shape[0]
    counts[:] = 0
    highest = np.uint32(0)
    for i in range(size):
        digit = source[i] >> np.uint32(21)
        counts[digit] += 1
        highest = max(highest, digit)
    digit, remaining = _select_digit(counts, np.int64(highest), k)
    top = np.uint32(digit)
    m = 0
    for i in range(size):
        key = source[i]
        candidates[m] = key  # m <= i: safe when source is candidates
        m += (key >> np.uint32(21)) == top
    threshold = top << np.uint32(21)
    for shift in (np.uint32(14), np.uint32(7), np.uint32(0)):
        counts[:128] = 0
        for j in range(m):
            counts[(candidates[j] >> shift) & np.uint32(127)] += 1
        digit, remaining = _select_digit(counts, 127, remaining)
        part = np.uint32(digit)
        threshold |= part << shift
        if shift == 0:
            return threshold, remaining, counts[digit]
        kept = 0
        for j in range(m):
            key = candidates[j]
            candidates[kept] = key
            kept += ((key >> shift) & np.uint32(127)) == part
        m = kept
    return threshold, remaining, 0  # not reached


@numba.njit(**JIT_OPTIONS)
def _lowered(threshold):
    """The next sample's guess: a key about half an octave below `threshold`."""
    return threshold - np.uint32(2 << 21) if threshold > np.uint32(2 << 21) else np.uint32(0)


@numba.njit(**JIT_OPTIONS)
def _order_keys(keys):
    """Turns float32 bits (viewed as uint32, in place) into keys that order as `<` does.

    The radix-sort trick, without branches: positive floats get the sign bit set,
    negative ones all bits flipped. Callers store `value + 0.0`, which turns -0.0
    into +0.0: top_k treats the two as equal.
    """
    for i in range(keys.shape[0]):
        bits = keys[i]
        keys[i] = bits ^ ((np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000))


@numba.njit(**JIT_OPTIONS)
def kwinners(x, boost, k, idx, val):
    """The k largest boosted values of each sample, ties going to the lower index.

    This is exactly the set `tf.math.top_k` picks (it orders equal values by index),
    so `KWinners` and this kernel agree whenever their inputs agree bit for bit.

    Args:
        x: float32 `[B, n]` (flattened in C order).
        boost: float32 `[n]`, the boost factor of every position.
        k: Winners per sample, `1 <= k < n`.
        idx: int32 `[B, k]` output: winners' indices, ascending.
        val: float32 `[B, k]` output: their un-boosted values.
    """
    n = x.shape[1]
    keys = np.empty(n, np.uint32)
    values = keys.view(np.float32)
    counts = np.zeros(2048, np.int64)
    candidates = np.empty(n, np.uint32)
    # Winners are gathered here first, without branches (always write, advance on a
    # win): a branch per value mispredicts at every scattered winner.
    found = np.empty(n, np.int32)
    guess = np.uint32(0)
    for s in range(x.shape[0]):
        for i in range(n):
            values[i] = x[s, i] * boost[i] + np.float32(0.0)
        _order_keys(keys)
        threshold, take, equal = _kth_largest(keys, k, counts, candidates, guess)
        guess = _lowered(threshold)
        if take == equal:  # usually: every key equal to the threshold wins
            m = 0
            for i in range(n):
                found[m] = i
                m += keys[i] >= threshold
        else:  # only the first `take` of the keys equal to the threshold win
            m = 0
            for i in range(n):
                key = keys[i]
                if key > threshold or (key == threshold and take > 0):
                    if key == threshold:
                        take -= 1
                    found[m] = i
                    m += 1
        for j in range(k):
            idx[s, j] = found[j]
            val[s, j] = x[s, found[j]]


def _winner_mask(x, boost, k, chunks, mask, counts):
    """Training-time k-winners selection: a 0/1 mask and the winners' counts per channel.

    Picks exactly the winners `KWinners` picks with `tf.math.top_k` (the k largest
    boosted values of each sample, ties going to the lower index), in linear time.
    The passes over a sample are written without data-dependent branches, and the
    counts go to a local integer array, so that LLVM vectorises the loops.

    Args:
        x: float32 `[B, positions, channels]`, the layer's input (channels last;
            `positions` is 1 for rank-2 input, height * width for rank-4).
        boost: float32 `[channels]`, the boost factor of each channel.
        k: Winners per sample, `1 <= k < positions * channels`.
        chunks: Number of parts the batch is split into, one per thread.
        mask: float32 `[B, positions, channels]` output: 1.0 at the winners, else 0.0.
        counts: int32 `[chunks, channels]` output: per part, how many winners of each
            channel have a positive input.
    """
    batch, positions, channels = x.shape
    for part in numba.prange(chunks):
        flat_keys = np.empty(positions * channels, np.uint32)
        keys = flat_keys.reshape((positions, channels))
        values = keys.view(np.float32)
        histogram = np.empty(2048, np.int64)
        candidates = np.empty(positions * channels, np.uint32)
        positive_winners = np.zeros(channels, np.int32)
        guess = np.uint32(0)
        for s in range(part * batch // chunks, (part + 1) * batch // chunks):
            for p in range(positions):
                for c in range(channels):
                    values[p, c] = x[s, p, c] * boost[c] + np.float32(0.0)
            _order_keys(flat_keys)
            threshold, take, equal = _kth_largest(flat_keys, k, histogram, candidates, guess)
            guess = _lowered(threshold)
            # Usually every key equal to the threshold wins (take == equal): then the
            # mask is simply key >= threshold. Otherwise the first `take` of them win.
            all_equal_win = take == equal
            for p in range(positions):
                for c in range(channels):
                    key = keys[p, c]
                    won = (key > threshold) | (all_equal_win & (key == threshold))
                    mask[s, p, c] = np.float32(won)
                    positive_winners[c] += np.int32(won & (x[s, p, c] > np.float32(0.0)))
            if not all_equal_win:
                for p in range(positions):
                    for c in range(channels):
                        if keys[p, c] == threshold and take > 0:
                            take -= 1
                            mask[s, p, c] = np.float32(1.0)
                            positive_winners[c] += np.int32(x[s, p, c] > np.float32(0.0))
        counts[part] = positive_winners


# Holds the GIL on purpose: TF may call it from several threads at once (inter-op
# parallelism, tf.distribute replicas), and numba's default "workqueue" threading
# layer must not be entered concurrently. `parallel` splits the batch over numba's
# own threads instead.
winner_mask = numba.njit(cache=True, parallel=True)(_winner_mask)

# The same kernel on the calling thread (`prange` is a plain `range` here; call it with
# `chunks=1`). Waking Numba's threads from a TensorFlow thread costs about 150 µs of
# CPU per call on the 2-core development VM, more than the whole selection takes below
# about a million values (`sparse_keras.layers.winner_selection.PARALLEL_MIN_VALUES`).
# No threading layer is entered, so it can release the GIL.
winner_mask_serial = numba.njit(cache=True, nogil=True)(_winner_mask)


@numba.njit(**JIT_OPTIONS)
def all_finite(x):
    """Whether every value of `x` (float32, any shape, C order) is finite: one
    vectorised pass, `v - v` being 0 for finite `v` and NaN for NaN and +-Inf."""
    flat = x.reshape(x.size)
    finite = True
    for i in range(flat.shape[0]):
        v = flat[i]
        finite &= (v - v) == np.float32(0.0)
    return finite


def threads() -> int:
    """Number of threads `winner_mask` may use (Numba's setting for this thread)."""
    return numba.get_num_threads()
