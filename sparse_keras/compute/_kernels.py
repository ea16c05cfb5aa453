"""Numba kernels of the sparse inference path (see `sparse_keras.compute.inference`),
and the training-time winner selection of `KWinners` on CPU (`winner_mask`).

Every kernel works on a whole batch and writes into an output array its caller owns,
so the Python driver allocates once per stage and the kernels never return arrays.
The inference kernels release the GIL (`nogil`): the driver runs chunks of a batch in
threads. `winner_mask` splits its batch over Numba's threads itself.

Sparse activations travel as `(idx, val)`: `idx[s, j]` the flat (C-order) index of the
j-th active value of sample `s`, in ascending order, and `val[s, j]` its value.
Ascending order keeps the summation order of every output fixed (bias first, then the
active inputs by index), so a sample gives the same bits whichever kernel or batch
size handles it.
"""

from __future__ import annotations

import numba
import numpy as np

# `contract` lets LLVM fuse multiply-adds into FMA instructions, as oneDNN does; the
# other fast-math flags (reassociation, no-NaN assumptions) stay off.
_JIT = {"nogil": True, "cache": True, "fastmath": {"contract"}}


@numba.njit(**_JIT)
def conv2d_dense_input(x, w, b, pool, relu, out):
    """Valid, stride-1 convolution of a dense input, then max-pooling and ReLU.

    One output row at a time: for each tap, its weight row is applied to four output
    positions at once, so it is loaded once per four multiply-adds (about twice as
    fast as one position at a time). Each output still sums bias, then taps in
    (dy, dx, ci) order, so results do not depend on the blocking. The pooling window
    is `pool x pool` with stride `pool` (1 = no pooling), floor mode as in Keras.

    Args:
        x: float32 `[B, H, W, Ci]`.
        w: float32 `[KH, KW, Ci, Co]` (batch norm already folded in).
        b: float32 `[Co]`.
        pool: Pooling size, >= 1.
        relu: Apply ReLU to the pooled output.
        out: float32 `[B, (H - KH + 1) // pool, (W - KW + 1) // pool, Co]`.
    """
    c_in = x.shape[3]
    kh, kw, _, c_out = w.shape
    w_out = x.shape[2] - kw + 1
    rows = np.empty((pool, w_out, c_out), np.float32)
    for s in range(x.shape[0]):
        for py in range(out.shape[1]):
            for sy in range(pool):
                y = py * pool + sy
                r = rows[sy]
                for xx in range(w_out):
                    for c in range(c_out):
                        r[xx, c] = b[c]
                for dy in range(kh):
                    for dx in range(kw):
                        for ci in range(c_in):
                            wr = w[dy, dx, ci]
                            xr = x[s, y + dy, :, ci]
                            xx = 0
                            while xx + 4 <= w_out:
                                v0 = xr[xx + dx]
                                v1 = xr[xx + dx + 1]
                                v2 = xr[xx + dx + 2]
                                v3 = xr[xx + dx + 3]
                                r0 = r[xx]
                                r1 = r[xx + 1]
                                r2 = r[xx + 2]
                                r3 = r[xx + 3]
                                for c in range(c_out):
                                    wc = wr[c]
                                    r0[c] += v0 * wc
                                    r1[c] += v1 * wc
                                    r2[c] += v2 * wc
                                    r3[c] += v3 * wc
                                xx += 4
                            while xx < w_out:
                                v0 = xr[xx + dx]
                                r0 = r[xx]
                                for c in range(c_out):
                                    r0[c] += v0 * wr[c]
                                xx += 1
            _pool_rows(rows, pool, relu, out[s, py])


@numba.njit(**_JIT)
def _pool_rows(rows, pool, relu, out):
    """Max over `pool` conv rows `[pool, W, C]` and windows of `pool` columns -> `[W // pool, C]`."""
    for px in range(out.shape[0]):
        o = out[px]
        for c in range(out.shape[1]):
            o[c] = rows[0, px * pool, c]
        for sy in range(pool):
            for sx in range(pool):
                rr = rows[sy, px * pool + sx]
                for c in range(out.shape[1]):
                    if rr[c] > o[c]:
                        o[c] = rr[c]
        if relu:
            for c in range(out.shape[1]):
                if o[c] < 0.0:
                    o[c] = 0.0


@numba.njit(**_JIT)
def conv2d_sparse_input(idx, val, height, width, c_in, w, b, pool, relu, out):
    """Valid, stride-1 convolution of a sparse input, then max-pooling and ReLU.

    Input-stationary: each active input `(y, x, ci)` adds `v * w[dy, dx, ci, :]` to the
    outputs `(y - dy, x - dx)` it reaches, so the work is proportional to the number
    of active inputs rather than to the input size. (Zero-valued winners are applied
    too: adding `0 * w` changes nothing.)

    Args:
        idx: int32 `[B, k]` flat indices into `[height, width, c_in]`, ascending.
        val: float32 `[B, k]` their values.
        height, width, c_in: Shape of the (dense) input.
        w: float32 `[KH, KW, c_in, Co]`.
        b: float32 `[Co]`.
        pool: Pooling size, >= 1.
        relu: Apply ReLU to the pooled output.
        out: float32 `[B, Ho // pool, Wo // pool, Co]`.
    """
    kh, kw, _, c_out = w.shape
    h_out = height - kh + 1
    w_out = width - kw + 1
    conv = np.empty((h_out, w_out, c_out), np.float32)
    for s in range(idx.shape[0]):
        for y in range(h_out):
            for xx in range(w_out):
                for c in range(c_out):
                    conv[y, xx, c] = b[c]
        n = idx.shape[1]
        j = 0
        while j < n:
            # Winners are sorted, so the active channels of one position are a run
            # [j, end): they update the same outputs, four weight rows per pass.
            position = idx[s, j] // c_in
            end = j + 1
            while end < n and idx[s, end] // c_in == position:
                end += 1
            xx = position % width
            y = position // width
            for dy in range(max(0, y - h_out + 1), min(kh - 1, y) + 1):
                for dx in range(max(0, xx - w_out + 1), min(kw - 1, xx) + 1):
                    o = conv[y - dy, xx - dx]
                    t = j
                    while t + 4 <= end:
                        v0 = val[s, t]
                        v1 = val[s, t + 1]
                        v2 = val[s, t + 2]
                        v3 = val[s, t + 3]
                        w0 = w[dy, dx, idx[s, t] % c_in]
                        w1 = w[dy, dx, idx[s, t + 1] % c_in]
                        w2 = w[dy, dx, idx[s, t + 2] % c_in]
                        w3 = w[dy, dx, idx[s, t + 3] % c_in]
                        for c in range(c_out):
                            # Left to right: the same sum as four separate updates.
                            o[c] = o[c] + v0 * w0[c] + v1 * w1[c] + v2 * w2[c] + v3 * w3[c]
                        t += 4
                    while t < end:
                        v0 = val[s, t]
                        w0 = w[dy, dx, idx[s, t] % c_in]
                        for c in range(c_out):
                            o[c] += v0 * w0[c]
                        t += 1
            j = end
        _pool_relu_one(conv, pool, relu, out[s])


@numba.njit(**_JIT)
def _pool_relu_one(x, pool, relu, out):
    for py in range(out.shape[0]):
        for px in range(out.shape[1]):
            o = out[py, px]
            for c in range(out.shape[2]):
                o[c] = x[py * pool, px * pool, c]
            for sy in range(pool):
                for sx in range(pool):
                    xr = x[py * pool + sy, px * pool + sx]
                    for c in range(out.shape[2]):
                        if xr[c] > o[c]:
                            o[c] = xr[c]
            if relu:
                for c in range(out.shape[2]):
                    if o[c] < 0.0:
                        o[c] = 0.0


@numba.njit(**_JIT)
def max_pool(x, pool, relu, out):
    """Max-pooling (window = stride = `pool`, floor mode) and optional ReLU of `[B, H, W, C]`."""
    for s in range(x.shape[0]):
        _pool_relu_one(x[s], pool, relu, out[s])


@numba.njit(**_JIT)
def affine(x, scale, shift, relu):
    """In place `x = x * scale + shift` over the last axis of `[B, n, C]`, then ReLU."""
    for s in range(x.shape[0]):
        for i in range(x.shape[1]):
            for c in range(x.shape[2]):
                t = x[s, i, c] * scale[c] + shift[c]
                x[s, i, c] = 0.0 if relu and t < 0.0 else t


@numba.njit(**_JIT)
def relu_inplace(x):
    """In place ReLU of a `[B, n]` array."""
    for s in range(x.shape[0]):
        for i in range(x.shape[1]):
            if x[s, i] < 0.0:
                x[s, i] = 0.0


@numba.njit(**_JIT)
def densify(idx, val, out):
    """Scatters `(idx, val)` into a zeroed `[B, n]` array."""
    for s in range(idx.shape[0]):
        for i in range(out.shape[1]):
            out[s, i] = 0.0
        for j in range(idx.shape[1]):
            out[s, idx[s, j]] = val[s, j]


@numba.njit(**_JIT)
def _select_digit(counts, top, remaining):
    """The largest digit (at most `top`) whose bucket holds the `remaining`-th largest
    key, and what is still to be taken from within that bucket."""
    digit = top
    while counts[digit] < remaining:
        remaining -= counts[digit]
        digit -= 1
    return digit, remaining


@numba.njit(**_JIT)
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


@numba.njit(**_JIT)
def _lowered(threshold):
    """The next sample's guess: a key about half an octave below `threshold`."""
    return threshold - np.uint32(2 << 21) if threshold > np.uint32(2 << 21) else np.uint32(0)


@numba.njit(**_JIT)
def _order_keys(keys):
    """Turns float32 bits (viewed as uint32, in place) into keys that order as `<` does.

    The radix-sort trick, without branches: positive floats get the sign bit set,
    negative ones all bits flipped. Callers store `value + 0.0`, which turns -0.0
    into +0.0: top_k treats the two as equal.
    """
    for i in range(keys.shape[0]):
        bits = keys[i]
        keys[i] = bits ^ ((np.uint32(0) - (bits >> np.uint32(31))) | np.uint32(0x80000000))


@numba.njit(**_JIT)
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
    guess = np.uint32(0)
    for s in range(x.shape[0]):
        for i in range(n):
            values[i] = x[s, i] * boost[i] + np.float32(0.0)
        _order_keys(keys)
        threshold, take, _ = _kth_largest(keys, k, counts, candidates, guess)
        guess = _lowered(threshold)
        m = 0
        for i in range(n):
            key = keys[i]
            if key > threshold or (key == threshold and take > 0):
                if key == threshold:
                    take -= 1
                idx[s, m] = i
                val[s, m] = x[s, i]
                m += 1


@numba.njit(**_JIT)
def dense_dense_input(x, w, b, relu, out):
    """`out = x @ w + b` skipping zero inputs (rows of `w` are read once per batch).

    Args:
        x: float32 `[B, n]`.
        w: float32 `[n, units]`.
        b: float32 `[units]`.
        relu: Apply ReLU.
        out: float32 `[B, units]`.
    """
    units = w.shape[1]
    for s in range(x.shape[0]):
        for c in range(units):
            out[s, c] = b[c]
    for i in range(w.shape[0]):
        wr = w[i]
        for s in range(x.shape[0]):
            v = x[s, i]
            if v != 0.0:
                o = out[s]
                for c in range(units):
                    o[c] += v * wr[c]
    if relu:
        relu_inplace(out)


@numba.njit(**_JIT)
def _group_by_row(idx, val, rows):
    """Counting sort of the active `(sample, value)` pairs by input row."""
    start = np.zeros(rows + 1, np.int64)
    for s in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            start[idx[s, j] + 1] += 1
    for i in range(rows):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    sample = np.empty(idx.size, np.int32)
    value = np.empty(idx.size, np.float32)
    # Samples in ascending order within a row, and rows visited in ascending order:
    # each output then sums its active inputs by ascending index, as in the
    # one-sample loop.
    for s in range(idx.shape[0]):
        for j in range(idx.shape[1]):
            i = idx[s, j]
            sample[fill[i]] = s
            value[fill[i]] = val[s, j]
            fill[i] += 1
    return start, sample, value


@numba.njit(**_JIT)
def dense_sparse_input_rows(idx, val, w, b, relu, out):
    """`out = x @ w + b` for a sparse `x`, reading only the active rows of `w`.

    For one sample this is k row reads; for a batch the active entries are grouped
    by row first, so each row of `w` is read once however many samples use it.

    Args:
        idx: int32 `[B, k]`, ascending per sample.
        val: float32 `[B, k]`.
        w: float32 `[n, units]` (masked-out weights are zeros).
        b: float32 `[units]`.
        relu: Apply ReLU.
        out: float32 `[B, units]`.
    """
    units = w.shape[1]
    for s in range(idx.shape[0]):
        for c in range(units):
            out[s, c] = b[c]
    if idx.shape[0] == 1:
        o = out[0]
        for j in range(idx.shape[1]):
            v = val[0, j]
            wr = w[idx[0, j]]
            for c in range(units):
                o[c] += v * wr[c]
    else:
        start, sample, value = _group_by_row(idx, val, w.shape[0])
        for i in range(w.shape[0]):
            if start[i] == start[i + 1]:
                continue
            wr = w[i]
            for t in range(start[i], start[i + 1]):
                v = value[t]
                o = out[sample[t]]
                for c in range(units):
                    o[c] += v * wr[c]
    if relu:
        relu_inplace(out)


@numba.njit(**_JIT)
def dense_sparse_input_csr(idx, val, indptr, cols, weights, b, relu, out):
    """`out = x @ w + b` for a sparse `x` and a compressed sparse-row `w`.

    Only the stored (masked-in) weights of the active rows are touched: the work is
    the paper's non-zero multiply count.

    Args:
        idx: int32 `[B, k]`, ascending per sample.
        val: float32 `[B, k]`.
        indptr: int64 `[n + 1]`, row `i`'s weights are `indptr[i]:indptr[i + 1]`.
        cols: int32 `[nnz]` output unit of each stored weight.
        weights: float32 `[nnz]` the stored weights.
        b: float32 `[units]`.
        relu: Apply ReLU.
        out: float32 `[B, units]`.
    """
    # One sample at a time: its output row stays in L1 while the scattered updates
    # land (grouping by row, as the "rows" kernel does, trades that for weight reuse
    # and measured slower).
    for s in range(idx.shape[0]):
        o = out[s]
        for c in range(b.shape[0]):
            o[c] = b[c]
        for j in range(idx.shape[1]):
            v = val[s, j]
            i = idx[s, j]
            for p in range(indptr[i], indptr[i + 1]):
                o[cols[p]] += v * weights[p]
    if relu:
        relu_inplace(out)


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


def threads() -> int:
    """Number of threads `winner_mask` may use (Numba's setting for this thread)."""
    return numba.get_num_threads()
