"""Numba kernels of the sparse inference path (see `sparse_keras.compute.inference`).

Every kernel works on a whole batch and writes into an output array its caller owns,
so the Python driver allocates once per stage and the kernels never return arrays.
The kernels release the GIL (`nogil`): the driver runs chunks of a batch in threads.
The k-winners selection they work with lives in `sparse_keras._select` (`kwinners`),
shared with the training-time selection.

Sparse activations travel as `(idx, val)`: `idx[s, j]` the flat (C-order) index of the
j-th active value of sample `s`, in ascending order, and `val[s, j]` its value.
Ascending order keeps the summation order of every output fixed (bias first, then the
active inputs by index), so a sample gives the same bits whichever kernel or batch
size handles it.
"""

from __future__ import annotations

import numba
import numpy as np

from sparse_keras._select import JIT_OPTIONS


@numba.njit(**JIT_OPTIONS)
def conv2d_dense_input(x, w, b, pool, relu, out):
    """Valid, stride-1 convolution of a dense input, then max-pooling and ReLU.

    One output row at a time: for each tap, its weight row is applied to four output
    positions at once, so it is loaded once per four multiply-adds (about twice as
    fast as one position at a time). Each output still sums bias, then taps in
    (dy, dx, ci) order, so results do not depend on the blocking. The pooling window
    is `pool x pool` with stride `pool` (1 = no pooling), floor mode as in Keras.

    Args:
        x: float32 `[B, H, W, Ci]`.
        w: float32 `[KH, KW, Ci, Cw]` (batch norm already folded in), `Cw >= Co`: extra
            (padding) channels are computed in scratch and not written out.
        b: float32 `[Cw]`.
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


@numba.njit(**JIT_OPTIONS)
def conv2d_5x5_single_channel_pool2(x, w, b, relu, out):
    """`conv2d_dense_input` for the paper's first layers: 5x5 taps, one input channel,
    max-pooling 2 (MNIST and GSC CNN-1/CNN-2), about twice as fast.

    One pooled output at a time: the four conv outputs of its window are summed in
    registers over the 25 taps (the tap loops have constant bounds, so LLVM unrolls
    them and vectorises the channel loop), each weight row feeding four outputs, and
    only their maximum is stored. The general kernel keeps partial sums in memory and
    loads and stores them for every tap. Each conv output sums bias, then taps in
    `(dy, dx)` order, as in `conv2d_dense_input`: the same bits.

    Args:
        x: float32 `[B, H, W, 1]`.
        w: float32 `[5, 5, 1, Cw]` (batch norm already folded in), `Cw >= Co`.
        b: float32 `[Cw]`.
        relu: Apply ReLU to the pooled output.
        out: float32 `[B, (H - 4) // 2, (W - 4) // 2, Co]`.
    """
    c_out = w.shape[3]
    pooled = np.empty(c_out, np.float32)
    for s in range(x.shape[0]):
        for py in range(out.shape[1]):
            for px in range(out.shape[2]):
                # The 6x6 input patch under the four conv outputs of this window.
                p = x[s, 2 * py : 2 * py + 6, 2 * px : 2 * px + 6, 0]
                for c in range(c_out):
                    a0 = b[c]
                    a1 = b[c]
                    a2 = b[c]
                    a3 = b[c]
                    for dy in range(5):
                        for dx in range(5):
                            wc = w[dy, dx, 0, c]
                            a0 += p[dy, dx] * wc
                            a1 += p[dy, dx + 1] * wc
                            a2 += p[dy + 1, dx] * wc
                            a3 += p[dy + 1, dx + 1] * wc
                    m = max(max(a0, a1), max(a2, a3))
                    if relu and m < 0.0:
                        m = 0.0
                    pooled[c] = m
                o = out[s, py, px]
                for c in range(o.shape[0]):
                    o[c] = pooled[c]


@numba.njit(**JIT_OPTIONS)
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


@numba.njit(**JIT_OPTIONS)
def conv2d_sparse_input(idx, val, height, width, c_in, w, b, pool, relu, out):
    """Valid, stride-1 convolution of a sparse input, then max-pooling and ReLU.

    Only the active inputs are applied, so the work is proportional to their number
    rather than to the input size. (Zero-valued winners are applied too: adding
    `0 * w` changes nothing.) Tap-stationary: for one kernel tap `(dy, dx)` at a time,
    every output position adds the active channels of the input it sees at that tap,
    four weight rows per pass over its output row. The tap's weights `w[dy, dx]` and a
    sample's output both stay in L1 while they are used (one active input at a time
    scattering into all outputs it reaches reads the whole kernel from L2 for every
    input instead). Each output sums bias, then its active inputs in ascending flat
    index, i.e. `(dy, dx, ci)` order: results do not depend on the blocking.

    Args:
        idx: int32 `[B, k]` flat indices into `[height, width, c_in]`, ascending.
        val: float32 `[B, k]` their values.
        height, width, c_in: Shape of the (dense) input.
        w: float32 `[KH, KW, c_in, Cw]`, `Cw >= Co`: extra (padding) channels are
            computed in scratch and not written out.
        b: float32 `[Cw]`.
        pool: Pooling size, >= 1.
        relu: Apply ReLU to the pooled output.
        out: float32 `[B, Ho // pool, Wo // pool, Co]`.
    """
    kh, kw, _, c_out = w.shape
    h_out = height - kh + 1
    w_out = width - kw + 1
    n = idx.shape[1]
    conv = np.empty((h_out, w_out, c_out), np.float32)
    # first[p]: the first winner at input position p or after (winners are sorted, so
    # the active channels of position p are winners first[p] .. first[p + 1] - 1).
    first = np.empty(height * width + 1, np.int64)
    channel = np.empty(n, np.int64)
    for s in range(idx.shape[0]):
        for y in range(h_out):
            for xx in range(w_out):
                for c in range(c_out):
                    conv[y, xx, c] = b[c]
        j = 0
        for p in range(height * width + 1):
            while j < n and idx[s, j] // c_in < p:
                j += 1
            first[p] = j
        for j in range(n):
            channel[j] = idx[s, j] % c_in
        for dy in range(kh):
            for dx in range(kw):
                wt = w[dy, dx]
                for y in range(h_out):
                    row = (y + dy) * width + dx
                    for xx in range(w_out):
                        t = first[row + xx]
                        end = first[row + xx + 1]
                        if t == end:
                            continue
                        o = conv[y, xx]
                        while t + 4 <= end:
                            v0 = val[s, t]
                            v1 = val[s, t + 1]
                            v2 = val[s, t + 2]
                            v3 = val[s, t + 3]
                            w0 = wt[channel[t]]
                            w1 = wt[channel[t + 1]]
                            w2 = wt[channel[t + 2]]
                            w3 = wt[channel[t + 3]]
                            for c in range(c_out):
                                # Left to right: the same sum as four separate updates.
                                o[c] = o[c] + v0 * w0[c] + v1 * w1[c] + v2 * w2[c] + v3 * w3[c]
                            t += 4
                        while t < end:
                            v0 = val[s, t]
                            w0 = wt[channel[t]]
                            for c in range(c_out):
                                o[c] += v0 * w0[c]
                            t += 1
        _pool_relu_one(conv, pool, relu, out[s])


@numba.njit(**JIT_OPTIONS)
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


@numba.njit(**JIT_OPTIONS)
def max_pool(x, pool, relu, out):
    """Max-pooling (window = stride = `pool`, floor mode) and optional ReLU of `[B, H, W, C]`."""
    for s in range(x.shape[0]):
        _pool_relu_one(x[s], pool, relu, out[s])


@numba.njit(**JIT_OPTIONS)
def affine(x, scale, shift, relu):
    """In place `x = x * scale + shift` over the last axis of `[B, n, C]`, then ReLU."""
    for s in range(x.shape[0]):
        for i in range(x.shape[1]):
            for c in range(x.shape[2]):
                t = x[s, i, c] * scale[c] + shift[c]
                x[s, i, c] = 0.0 if relu and t < 0.0 else t


@numba.njit(**JIT_OPTIONS)
def relu_inplace(x):
    """In place ReLU of a `[B, n]` array."""
    for s in range(x.shape[0]):
        for i in range(x.shape[1]):
            if x[s, i] < 0.0:
                x[s, i] = 0.0


@numba.njit(**JIT_OPTIONS)
def densify(idx, val, out):
    """Scatters `(idx, val)` into a zeroed `[B, n]` array."""
    for s in range(idx.shape[0]):
        for i in range(out.shape[1]):
            out[s, i] = 0.0
        for j in range(idx.shape[1]):
            out[s, idx[s, j]] = val[s, j]


@numba.njit(**JIT_OPTIONS)
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


@numba.njit(**JIT_OPTIONS)
def dense_sparse_input_rows(idx, val, w, b, relu, out):
    """`out = x @ w + b` for a sparse `x`, reading only the active rows of `w`.

    Sample by sample, four active rows per pass over the output row, so the output
    row is loaded and stored once per four rows. (Grouping a batch's active entries
    by row, so that each row of `w` is read once per batch, measured slower: every
    update then loads and stores an output row from an L2-sized batch output.)

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
    # Sample by sample, four active rows per pass over the output row: it is
    # loaded and stored once per four rows (left-to-right sum: the same bits).
    n = idx.shape[1]
    for s in range(idx.shape[0]):
        o = out[s]
        j = 0
        while j + 4 <= n:
            v0 = val[s, j]
            v1 = val[s, j + 1]
            v2 = val[s, j + 2]
            v3 = val[s, j + 3]
            w0 = w[idx[s, j]]
            w1 = w[idx[s, j + 1]]
            w2 = w[idx[s, j + 2]]
            w3 = w[idx[s, j + 3]]
            for c in range(units):
                o[c] = o[c] + v0 * w0[c] + v1 * w1[c] + v2 * w2[c] + v3 * w3[c]
            j += 4
        while j < n:
            v0 = val[s, j]
            w0 = w[idx[s, j]]
            for c in range(units):
                o[c] += v0 * w0[c]
            j += 1
    if relu:
        relu_inplace(out)


@numba.njit(**JIT_OPTIONS)
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
