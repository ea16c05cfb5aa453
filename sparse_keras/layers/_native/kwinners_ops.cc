// Training-time k-winners selection as TensorFlow ops (see winner_ops.py).
//
// The same algorithm, operation for operation, as sparse_keras/_select.py's
// `_winner_mask` (a most-significant-digit radix select of the k-th largest boosted
// value, ties going to the lower index: exactly tf.math.top_k's set), compiled into
// the training graph. A tf.numpy_function call around the Numba kernel costs more than
// the selection itself at small batches (it hands the activations to Python and back);
// an op does not. Compiled with -ffp-contract=off: the duty-cycle update must give the
// float32 bits of KWinners.update_duty_cycles.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
namespace errors = tensorflow::errors;
namespace shape_inference = tensorflow::shape_inference;

namespace {

// OP_REQUIRES for a function that returns whether it succeeded.
#define SK_REQUIRE(ctx, condition, status)                \
  do {                                                    \
    if (!(condition)) {                                   \
      (ctx)->CtxFailure(__FILE__, __LINE__, (status));    \
      return false;                                       \
    }                                                     \
  } while (0)

// The largest digit (at most `top`) whose bucket holds the `remaining`-th largest key;
// `remaining` becomes what is still to be taken from within that bucket.
int64_t SelectDigit(const int64_t* counts, int64_t top, int64_t* remaining) {
  int64_t digit = top;
  while (counts[digit] < *remaining) {
    *remaining -= counts[digit];
    --digit;
  }
  return digit;
}

struct Kth {
  uint32_t threshold;  // the k-th largest key
  int64_t take;        // how many keys equal to it belong to the top k
  int64_t equal;       // how many keys equal it
};

// `_select._kth_largest`: top 11 bits first, then 7 bits at a time among the keys
// sharing the digits so far. `guess` (0 for none) is a key believed to be at or below
// the answer; when at least k keys reach it, only those take part.
Kth KthLargest(const uint32_t* keys, int64_t n, int64_t k, int64_t* counts, uint32_t* candidates,
               uint32_t guess) {
  int64_t size = 0;
  if (guess > 0) {
    for (int64_t i = 0; i < n; ++i) {
      const uint32_t key = keys[i];
      candidates[size] = key;
      size += key >= guess;
    }
  }
  const uint32_t* source = candidates;
  if (size < k) {
    source = keys;
    size = n;
  }
  std::fill(counts, counts + 2048, 0);
  uint32_t highest = 0;
  for (int64_t i = 0; i < size; ++i) {
    const uint32_t digit = source[i] >> 21;
    ++counts[digit];
    highest = std::max(highest, digit);
  }
  int64_t remaining = k;
  const uint32_t top = static_cast<uint32_t>(SelectDigit(counts, highest, &remaining));
  int64_t m = 0;
  for (int64_t i = 0; i < size; ++i) {
    const uint32_t key = source[i];
    candidates[m] = key;  // m <= i: safe when source is candidates
    m += (key >> 21) == top;
  }
  uint32_t threshold = top << 21;
  for (const uint32_t shift : {14u, 7u, 0u}) {
    std::fill(counts, counts + 128, 0);
    for (int64_t j = 0; j < m; ++j) ++counts[(candidates[j] >> shift) & 127u];
    const uint32_t part = static_cast<uint32_t>(SelectDigit(counts, 127, &remaining));
    threshold |= part << shift;
    if (shift == 0) return {threshold, remaining, counts[part]};
    int64_t kept = 0;
    for (int64_t j = 0; j < m; ++j) {
      const uint32_t key = candidates[j];
      candidates[kept] = key;
      kept += ((key >> shift) & 127u) == part;
    }
    m = kept;
  }
  return {threshold, remaining, 0};  // not reached
}

// Float32 bits -> keys that order as `<` does (`_select._order_keys`).
inline uint32_t OrderKey(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits ^ ((0u - (bits >> 31)) | 0x80000000u);
}

// `_select._winner_mask` on samples [begin, end): the mask, and per channel how many
// winners have a positive input (added to `positive_winners`).
void WinnerMask(const float* x, const float* boost, int64_t positions, int64_t channels,
                int64_t k, int64_t begin, int64_t end, float* mask, int32_t* positive_winners) {
  const int64_t n = positions * channels;
  std::vector<uint32_t> keys(n), candidates(n);
  std::vector<int64_t> histogram(2048);
  uint32_t guess = 0;
  for (int64_t s = begin; s < end; ++s) {
    const float* xs = x + s * n;
    float* ms = mask + s * n;
    for (int64_t p = 0; p < positions; ++p) {
      for (int64_t c = 0; c < channels; ++c) {
        // + 0.0f turns -0.0 into +0.0: top_k treats the two as equal.
        keys[p * channels + c] = OrderKey(xs[p * channels + c] * boost[c] + 0.0f);
      }
    }
    const Kth kth = KthLargest(keys.data(), n, k, histogram.data(), candidates.data(), guess);
    const uint32_t threshold = kth.threshold;
    guess = threshold > (2u << 21) ? threshold - (2u << 21) : 0u;
    // Usually every key equal to the threshold wins; otherwise the first `take` of them.
    const bool all_equal_win = kth.take == kth.equal;
    for (int64_t p = 0; p < positions; ++p) {
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t i = p * channels + c;
        const uint32_t key = keys[i];
        const bool won = (key > threshold) | (all_equal_win & (key == threshold));
        ms[i] = won ? 1.0f : 0.0f;
        positive_winners[c] += won & (xs[i] > 0.0f);
      }
    }
    if (!all_equal_win) {
      int64_t take = kth.take;
      for (int64_t i = 0; i < n && take > 0; ++i) {
        if (keys[i] == threshold) {
          --take;
          ms[i] = 1.0f;
          positive_winners[i % channels] += xs[i] > 0.0f;
        }
      }
    }
  }
}

// Validates the inputs, allocates the mask and fills it; `counts` gets, per channel,
// the number of winners with a positive input over the whole batch.
// Batches of at least `parallel_min` values are split over TensorFlow's intra-op threads
// (winner_selection.PARALLEL_MIN_VALUES: below it, waking threads costs more than it saves).
bool SelectWinners(OpKernelContext* ctx, int64_t k, int64_t parallel_min,
                   const std::string& message, std::vector<int32_t>* counts) {
  const Tensor& x = ctx->input(0);
  const Tensor& boost = ctx->input(1);
  SK_REQUIRE(ctx, x.dims() == 2 || x.dims() == 4,
             errors::InvalidArgument("k-winners input must have rank 2 or 4, got shape ",
                                     x.shape().DebugString()));
  SK_REQUIRE(ctx, boost.dims() == 1, errors::InvalidArgument("boost must be a vector"));
  const int64_t batch = x.dim_size(0);
  const int64_t channels = boost.dim_size(0);
  const int64_t units = batch > 0 ? x.NumElements() / batch : 0;
  SK_REQUIRE(ctx, channels == x.dim_size(x.dims() - 1),
             errors::InvalidArgument("boost has ", channels, " entries, the input's last axis ",
                                     x.dim_size(x.dims() - 1)));
  SK_REQUIRE(ctx, batch == 0 || (k >= 1 && k < units),
             errors::InvalidArgument("k = ", k, " must be in [1, ", units, ")"));
  const float* values = x.flat<float>().data();
  bool finite = true;
  for (int64_t i = 0; i < x.NumElements(); ++i) finite &= (values[i] - values[i]) == 0.0f;
  SK_REQUIRE(ctx, finite, errors::InvalidArgument(message));

  Tensor* mask = nullptr;
  const auto allocated = ctx->allocate_output(0, x.shape(), &mask);
  SK_REQUIRE(ctx, allocated.ok(), allocated);
  counts->assign(channels, 0);
  if (batch == 0) return true;
  const int64_t positions = units / channels;
  const float* boosts = boost.flat<float>().data();
  float* out = mask->flat<float>().data();
  if (batch * units < parallel_min) {
    WinnerMask(values, boosts, positions, channels, k, 0, batch, out, counts->data());
    return true;
  }
  // Whole counts: the sum does not depend on how the batch is split.
  std::mutex lock;
  auto work = [&](int64_t begin, int64_t end) {
    std::vector<int32_t> part(channels, 0);
    WinnerMask(values, boosts, positions, channels, k, begin, end, out, part.data());
    std::lock_guard<std::mutex> guard(lock);
    for (int64_t c = 0; c < channels; ++c) (*counts)[c] += part[c];
  };
  const auto& workers = *ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers.num_threads, workers.workers, batch, units * 8, work);
  return true;
}

tensorflow::Status MaskShape(shape_inference::InferenceContext* c) {
  c->set_output(0, c->input(0));
  c->set_output(1, c->input(1));
  c->set_output(2, c->Scalar());
  return tensorflow::Status();
}

class WinnerMaskOp : public OpKernel {
 public:
  explicit WinnerMaskOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("k", &k_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("message", &message_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("parallel_min", &parallel_min_));
  }

  void Compute(OpKernelContext* ctx) override {
    std::vector<int32_t> counts;
    if (!SelectWinners(ctx, k_, parallel_min_, message_, &counts)) return;
    Tensor* count = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, ctx->input(1).shape(), &count));
    auto count_flat = count->flat<float>();
    for (size_t c = 0; c < counts.size(); ++c) count_flat(c) = static_cast<float>(counts[c]);
    Tensor* batch = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({}), &batch));
    batch->scalar<float>()() = static_cast<float>(ctx->input(0).dim_size(0));
  }

 private:
  int64_t k_;
  int64_t parallel_min_;
  std::string message_;
};

class WinnersAndDutyCyclesOp : public OpKernel {
 public:
  explicit WinnersAndDutyCyclesOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("k", &k_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("message", &message_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("parallel_min", &parallel_min_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("period", &period_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("share", &share_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& duty = ctx->input(2);
    const Tensor& seen = ctx->input(3);
    OP_REQUIRES(ctx, duty.shape() == ctx->input(1).shape() && seen.dims() == 0,
                errors::InvalidArgument("duty cycles must match boost, samples seen a scalar"));
    std::vector<int32_t> counts;
    if (!SelectWinners(ctx, k_, parallel_min_, message_, &counts)) return;
    // KWinners.update_duty_cycles, operation for operation, in float32.
    const float batch = static_cast<float>(ctx->input(0).dim_size(0));
    const float samples = seen.scalar<float>()() + batch;
    const float period = std::max(std::min(period_, samples), 1.0f);
    Tensor* new_duty = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, duty.shape(), &new_duty));
    auto old_flat = duty.flat<float>();
    auto new_flat = new_duty->flat<float>();
    for (size_t c = 0; c < counts.size(); ++c) {
      const float count = static_cast<float>(counts[c]) * share_;
      const float decayed = old_flat(c) * (period - batch);
      new_flat(c) = (decayed + count) / period;
    }
    Tensor* new_seen = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({}), &new_seen));
    new_seen->scalar<float>()() = samples;
  }

 private:
  int64_t k_;
  int64_t parallel_min_;
  std::string message_;
  float period_;
  float share_;
};

}  // namespace

REGISTER_OP("SparseKerasWinnerMask")
    .Input("inputs: float")
    .Input("boost: float")
    .Output("mask: float")
    .Output("count: float")
    .Output("batch_size: float")
    .Attr("k: int")
    .Attr("parallel_min: int")
    .Attr("message: string")
    .SetShapeFn(MaskShape)
    .Doc("k-winners mask, per-channel counts of positive winners, and the batch size.");

REGISTER_OP("SparseKerasWinnersAndDutyCycles")
    .Input("inputs: float")
    .Input("boost: float")
    .Input("duty_cycles: float")
    .Input("samples_seen: float")
    .Output("mask: float")
    .Output("new_duty_cycles: float")
    .Output("new_samples_seen: float")
    .Attr("k: int")
    .Attr("parallel_min: int")
    .Attr("message: string")
    .Attr("period: float")
    .Attr("share: float")
    .SetShapeFn(MaskShape)
    .Doc("k-winners mask with the duty-cycle update of KWinners.update_duty_cycles.");

REGISTER_KERNEL_BUILDER(Name("SparseKerasWinnerMask").Device(DEVICE_CPU), WinnerMaskOp);
REGISTER_KERNEL_BUILDER(Name("SparseKerasWinnersAndDutyCycles").Device(DEVICE_CPU),
                        WinnersAndDutyCyclesOp);
