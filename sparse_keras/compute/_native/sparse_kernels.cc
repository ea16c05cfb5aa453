// Sparse inference kernels in C++, compiled on first use and called through ctypes by
// sparse_keras/compute/native_kernels.py.
//
// The two stages where the Numba kernels (`_kernels.py`) stay furthest from the
// multiply-count limit (docs/performance.md):
// - a convolution fed by k-winners, output-stationary: up to 64 output channels (four
//   16-float vectors) of one output are summed in registers over all active inputs of
//   one kernel row, where the Numba kernel loads and stores its outputs per input;
// - a dense layer fed by k-winners with masked weights, vectorised over the batch:
//   each stored weight meets 64 samples' inputs at once, so the masked-out weights are
//   skipped at the vector units' full rate.
//
// Same bits as the Numba kernels: every output sums its bias, then the products of its
// inputs in ascending input index, each add fused with its multiply as LLVM does under
// Numba's `contract` flag (here -ffp-contract=fast). Terms that are exactly zero (a
// masked weight, an inactive input) add nothing, so skipping them keeps the sum (up to
// the sign of a sum that is exactly zero: -0.0 + 0.0 is +0.0; the inputs are finite).
//
// Sparse activations are `(idx, val)` as in `_kernels.py`: `idx[s * k + j]` the flat
// C-order index of sample s's j-th active value (ascending), `val[s * k + j]` its value.
// Every array is C-contiguous; native_kernels.py checks types, shapes and alignment.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

typedef float v16 __attribute__((vector_size(64)));
constexpr int64_t kLanes = 16;
constexpr int64_t kMaxVectors = 4;  // 64 channels: 4 accumulators stay in registers

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);  // any alignment (the callers' data is 64-byte aligned)
  return v;
}

inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

// float scratch aligned to cache lines (std::vector's is not: a 64-byte vector that
// straddles two lines costs two loads).
class AlignedFloats {
 public:
  explicit AlignedFloats(int64_t n)
      : data_(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64))) {}
  ~AlignedFloats() { std::free(data_); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* data() { return data_; }

 private:
  float* data_;
};

// An active input of a convolution: its value and where its weights start (idx * cw).
struct Input {
  float value;
  int32_t offset;
};

// Adds kernel row dy to channels c0 .. c0 + 16 * NV of the conv output at (y, x),
// whose partial sums are at dst[c0 ..].
//
// The row sees the active inputs first[p] .. first[p + kw] - 1 (p = (y + dy) * width +
// x): one run of ascending flat indices, i.e. (dx, channel) order, so with dy ascending
// every output sums bias, then its inputs in (dy, dx, channel) order. Input t (column
// x + dx, channel ci) uses w[dy, dx, ci] = w + (dy * kw - p) * c_in * cw + offset. The
// NV sums are independent and hide the add latency.
template <int NV>
inline void conv_kernel_row(const int64_t* first, const Input* inputs, const float* w,
                            int64_t kw, int64_t width, int64_t c_in, int64_t cw, int64_t c0,
                            int64_t dy, int64_t y, int64_t x, float* dst) {
  v16 acc[NV];
  for (int q = 0; q < NV; ++q) acc[q] = load(dst + c0 + kLanes * q);
  const int64_t p = (y + dy) * width + x;
  const float* base = w + (dy * kw - p) * c_in * cw + c0;
  const int64_t end = first[p + kw];
  for (int64_t t = first[p]; t < end; ++t) {
    const Input e = inputs[t];
    const float* wr = base + e.offset;
    for (int q = 0; q < NV; ++q) acc[q] = acc[q] + e.value * load(wr + kLanes * q);
  }
  for (int q = 0; q < NV; ++q) store(dst + c0 + kLanes * q, acc[q]);
}

// Adds chunk h of the weights to the sums of all units for 16 * NV samples:
// sums[c * 64 + lane] += xt[row * 64 + lane] * w[row, c] over the chunk's stored
// weights of unit c, ascending rows (xt: the chunk's inputs, transposed).
template <int NV>
void add_weight_chunk(const float* xt, const int64_t* ptr, const int32_t* rows,
                      const float* weights, int64_t units, float* sums) {
  for (int64_t c = 0; c < units; ++c) {
    v16 acc[NV];
    float* dst = sums + c * kMaxVectors * kLanes;
    for (int q = 0; q < NV; ++q) acc[q] = load(dst + kLanes * q);
    const int64_t end = ptr[c + 1];
    for (int64_t i = ptr[c]; i < end; ++i) {
      const float v = weights[i];
      const float* xr = xt + static_cast<int64_t>(rows[i]) * kMaxVectors * kLanes;
      for (int q = 0; q < NV; ++q) acc[q] = acc[q] + load(xr + kLanes * q) * v;
    }
    for (int q = 0; q < NV; ++q) store(dst + kLanes * q, acc[q]);
  }
}

// The pooled output at (py, px), channels c0 .. c0 + 16 * NV, of a 5x5 convolution of a
// one-channel image followed by 2x2 max-pooling: the window's four conv outputs are
// summed in registers (4 * NV vectors), each weight vector loaded once for all four.
template <int NV>
inline void first_layer_window(const float* x, int64_t width, const float* w, const float* b,
                               int64_t cw, int64_t c0, int64_t py, int64_t px, v16* pooled) {
  v16 acc[4][NV];
  for (int a = 0; a < 4; ++a)
    for (int q = 0; q < NV; ++q) acc[a][q] = load(b + c0 + kLanes * q);
  const float* patch = x + (2 * py) * width + 2 * px;  // the 6x6 input under the window
  for (int dy = 0; dy < 5; ++dy)
    for (int dx = 0; dx < 5; ++dx) {
      const float* r0 = patch + dy * width + dx;
      const float* r1 = r0 + width;
      const float* wt = w + (dy * 5 + dx) * cw + c0;
      for (int q = 0; q < NV; ++q) {
        const v16 wq = load(wt + kLanes * q);
        acc[0][q] = acc[0][q] + r0[0] * wq;
        acc[1][q] = acc[1][q] + r0[1] * wq;
        acc[2][q] = acc[2][q] + r1[0] * wq;
        acc[3][q] = acc[3][q] + r1[1] * wq;
      }
    }
  for (int q = 0; q < NV; ++q) {
    const v16 m01 = acc[0][q] > acc[1][q] ? acc[0][q] : acc[1][q];
    const v16 m23 = acc[2][q] > acc[3][q] ? acc[2][q] : acc[3][q];
    pooled[q] = m01 > m23 ? m01 : m23;
  }
}

}  // namespace

extern "C" {

// Valid, stride-1 convolution of a sparse input, then max-pooling (window = stride =
// pool, floor mode) and an optional ReLU.
//   idx, val: [batch, k]; the dense input is [height, width, c_in].
//   w: [kh, kw, c_in, cw] and b: [cw], cw a multiple of 16 and >= c_out (padding
//   channels are computed in scratch and not written out); w 64-byte aligned (every
//   weight row then starts a cache line), and height * width * c_in * cw < 2^31.
//   out: [batch, (height - kh + 1) / pool, (width - kw + 1) / pool, c_out].
void sk_conv2d_sparse_input(const int32_t* idx, const float* val, int64_t batch, int64_t k,
                            int64_t height, int64_t width, int64_t c_in, const float* w,
                            int64_t kh, int64_t kw, int64_t cw, const float* b, int64_t c_out,
                            int64_t pool, int32_t relu, float* out) {
  const int64_t ph = (height - kh + 1) / pool;
  const int64_t pw = (width - kw + 1) / pool;
  const int64_t cols = pw * pool;  // the conv outputs floor-mode pooling reads
  std::vector<int64_t> first(height * width + 1);
  std::vector<Input> inputs(k);
  const int64_t rows = ph * pool;
  AlignedFloats conv(rows * cols * cw);
  for (int64_t s = 0; s < batch; ++s) {
    const int32_t* is = idx + s * k;
    const float* vs = val + s * k;
    int64_t j = 0;
    for (int64_t p = 0; p <= height * width; ++p) {
      while (j < k && is[j] / c_in < p) ++j;
      first[p] = j;
    }
    for (j = 0; j < k; ++j) inputs[j] = Input{vs[j], static_cast<int32_t>(is[j] * cw)};
    for (int64_t i = 0; i < rows * cols; ++i)
      std::memcpy(conv.data() + i * cw, b, cw * sizeof(float));
    // Kernel row by kernel row over all outputs: one kernel row's weights (kw * c_in
    // rows of cw floats) stay in L1/L2 while every output uses them. (All kernel rows of
    // one output at a time, sums kept in registers, measured slower.)
    for (int64_t c0 = 0; c0 < cw; c0 += kMaxVectors * kLanes) {
      const int64_t nv = std::min(kMaxVectors, (cw - c0) / kLanes);
      for (int64_t dy = 0; dy < kh; ++dy)
        for (int64_t y = 0; y < rows; ++y)
          for (int64_t x = 0; x < cols; ++x) {
            float* dst = conv.data() + (y * cols + x) * cw;
            const int64_t* f = first.data();
            const Input* in = inputs.data();
            switch (nv) {
              case 4:
                conv_kernel_row<4>(f, in, w, kw, width, c_in, cw, c0, dy, y, x, dst);
                break;
              case 3:
                conv_kernel_row<3>(f, in, w, kw, width, c_in, cw, c0, dy, y, x, dst);
                break;
              case 2:
                conv_kernel_row<2>(f, in, w, kw, width, c_in, cw, c0, dy, y, x, dst);
                break;
              default:
                conv_kernel_row<1>(f, in, w, kw, width, c_in, cw, c0, dy, y, x, dst);
                break;
            }
          }
    }
    float* o = out + s * ph * pw * c_out;
    for (int64_t py = 0; py < ph; ++py)
      for (int64_t px = 0; px < pw; ++px, o += c_out) {
        const float* r0 = conv.data() + (py * pool * cols + px * pool) * cw;
        for (int64_t c = 0; c < c_out; ++c) o[c] = r0[c];
        for (int64_t sy = 0; sy < pool; ++sy)
          for (int64_t sx = 0; sx < pool; ++sx) {
            const float* r = r0 + (sy * cols + sx) * cw;
            for (int64_t c = 0; c < c_out; ++c)
              if (r[c] > o[c]) o[c] = r[c];
          }
        if (relu)
          for (int64_t c = 0; c < c_out; ++c)
            if (o[c] < 0.0f) o[c] = 0.0f;
      }
  }
}

// The paper's first layers: a 5x5 convolution of a one-channel image, 2x2 max-pooling
// (floor mode) and an optional ReLU.
//   x: [batch, height, width] (one channel).
//   w: [5, 5, 1, cw] and b: [cw], cw a multiple of 16 and >= c_out, w 64-byte aligned.
//   out: [batch, (height - 4) / 2, (width - 4) / 2, c_out].
// Each conv output sums bias, then the 25 taps in (dy, dx) order: the bits of the Numba
// kernels `conv2d_5x5_single_channel_pool2` and `conv2d_dense_input`.
void sk_conv2d_5x5_single_channel_pool2(const float* x, int64_t batch, int64_t height,
                                        int64_t width, const float* w, int64_t cw,
                                        const float* b, int64_t c_out, int32_t relu,
                                        float* out) {
  const int64_t ph = (height - 4) / 2;
  const int64_t pw = (width - 4) / 2;
  AlignedFloats pooled(cw);
  for (int64_t s = 0; s < batch; ++s) {
    const float* image = x + s * height * width;
    for (int64_t py = 0; py < ph; ++py)
      for (int64_t px = 0; px < pw; ++px) {
        int64_t c0 = 0;
        for (; c0 + kMaxVectors * kLanes <= cw; c0 += kMaxVectors * kLanes) {
          v16 m[kMaxVectors];
          first_layer_window<kMaxVectors>(image, width, w, b, cw, c0, py, px, m);
          for (int q = 0; q < kMaxVectors; ++q) store(pooled.data() + c0 + kLanes * q, m[q]);
        }
        for (; c0 < cw; c0 += kLanes) {
          v16 m[1];
          first_layer_window<1>(image, width, w, b, cw, c0, py, px, m);
          store(pooled.data() + c0, m[0]);
        }
        float* o = out + ((s * ph + py) * pw + px) * c_out;
        for (int64_t c = 0; c < c_out; ++c) {
          const float v = pooled.data()[c];
          o[c] = relu && v < 0.0f ? 0.0f : v;
        }
      }
  }
}

// out = x @ w + b (then an optional ReLU) for a sparse x and a sparse w, vectorised over
// the batch: 64 samples at a time, every stored weight is multiplied by the 64
// samples' inputs of its row in four vector products. Work is the stored weights per
// 64 samples (the weight density, not the input density, sets it), at nearly the
// vector units' full rate; pays from about 16 samples on.
//   idx, val: [batch, k]; n: input size.
//   The weights in chunks of `chunk_rows` rows (so that the chunk's inputs, chunk_rows
//   x 64 floats, stay in L1): for chunk h and unit c, ptr[h * units + c] ..
//   ptr[h * units + c + 1] - 1 index `rows` (the row within the chunk, ascending) and
//   `weights`. ptr: [ceil(n / chunk_rows) * units + 1].
//   b: [units]; out: [batch, units].
// Every output sums bias, then the products of its stored weights in ascending row.
void sk_dense_sparse_weights(const int32_t* idx, const float* val, int64_t batch, int64_t k,
                             int64_t n, int64_t chunk_rows, const int64_t* ptr,
                             const int32_t* rows, const float* weights, const float* b,
                             int64_t units, int32_t relu, float* out) {
  constexpr int64_t kWidth = kMaxVectors * kLanes;
  const int64_t chunks = (n + chunk_rows - 1) / chunk_rows;
  AlignedFloats xt(chunks * chunk_rows * kWidth);
  AlignedFloats sums(units * kWidth);
  for (int64_t s0 = 0; s0 < batch; s0 += kWidth) {
    const int64_t lanes = std::min(kWidth, batch - s0);
    const int64_t nv = (lanes + kLanes - 1) / kLanes;
    std::memset(xt.data(), 0, chunks * chunk_rows * kWidth * sizeof(float));
    for (int64_t l = 0; l < lanes; ++l)
      for (int64_t j = 0; j < k; ++j)
        xt.data()[static_cast<int64_t>(idx[(s0 + l) * k + j]) * kWidth + l] = val[(s0 + l) * k + j];
    for (int64_t c = 0; c < units; ++c)
      for (int64_t l = 0; l < kWidth; ++l) sums.data()[c * kWidth + l] = b[c];
    for (int64_t h = 0; h < chunks; ++h) {
      const float* xc = xt.data() + h * chunk_rows * kWidth;
      const int64_t* ph = ptr + h * units;
      switch (nv) {
        case 4:
          add_weight_chunk<4>(xc, ph, rows, weights, units, sums.data());
          break;
        case 3:
          add_weight_chunk<3>(xc, ph, rows, weights, units, sums.data());
          break;
        case 2:
          add_weight_chunk<2>(xc, ph, rows, weights, units, sums.data());
          break;
        default:
          add_weight_chunk<1>(xc, ph, rows, weights, units, sums.data());
          break;
      }
    }
    for (int64_t l = 0; l < lanes; ++l)
      for (int64_t c = 0; c < units; ++c) {
        const float v = sums.data()[c * kWidth + l];
        out[(s0 + l) * units + c] = relu && v < 0.0f ? 0.0f : v;
      }
  }
}

}  // extern "C"
