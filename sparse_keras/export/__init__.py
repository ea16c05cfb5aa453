"""Export a model as a TensorFlow Serving SavedModel that takes the raw input.

The zoo's networks map *features* (normalised MNIST images, log-mel spectrograms) to
*logits*. A served model should take what a client actually has, so the exported
graph puts the dataset's preprocessing in front of the network and a softmax behind
it:

| dataset | `serving_default` input | other signatures |
| --- | --- | --- |
| mnist | `images`: uint8 `[batch, 28, 28]` (0-255) | `serving_float` (`images`, float32 in [0, 1]), `serving_features` |
| gsc, gsc12v2, fsdd | `waveforms`: float32 `[batch, samples]`, 16 kHz in [-1, 1], any length | `serving_pcm16` (`waveforms`, int16 PCM), `serving_features` |
| fsdd | | `serving_8khz` (`waveforms`, float32 at FSDD's own 8 kHz, resampled inside) |

The signatures follow from the dataset's descriptor (`sparse_keras.data.dataset(name)`):
its raw input decides them, its `prepare` and `features` are the preprocessing (the
training pipeline's own code). Audio is padded with zeros or cropped to 1 s as the
dataset's pipeline does it: at the end for GSC (the paper's `FixAudioLength`), centred
for FSDD's trimmed clips (`fsdd.load`'s default).

`serving_features` (input `features`) takes the network's own input, for clients
that compute features themselves. Every signature returns `probabilities` (float32
`[batch, classes]`), `class_ids` (int64 `[batch]`) and `class_names` (string
`[batch]`). The network runs in inference mode: k-winners keep
`round(k * k_inference_factor)` winners with frozen duty cycles, batch norm uses its
moving statistics, dropout is off.

Every signature checks its request inside the graph before any model op runs, and
answers a bad one with an `InvalidArgumentError` (HTTP 400 / gRPC INVALID_ARGUMENT from
TF Serving) that names the signature, the input, what it got and what it expects: the
rank and the non-batch dimensions of the table, a batch of at least one example, audio
of at least one sample, float values that are all finite (no NaN or Inf), and
`serving_float` pixels in [0, 1]. The signatures therefore declare their input with an
unknown shape (`saved_model_cli show` prints `unknown_rank`): TF Serving does not
enforce a declared shape, and declaring one would let graph optimisation drop the
checks, so that a request of the wrong rank could reach a convolution and abort the
server. A request of the wrong dtype is refused by TensorFlow itself before the graph
runs. Waveform amplitudes are not range-checked: the log-mel features are relative to
each clip's maximum, so a clip at another scale gives (nearly) the same features.

`signatures` builds the serving graph; `saved_model` writes and checks the SavedModel.
The directory layout is the one TF Serving polls: `<export_dir>/<model_name>/<version>/`
with `saved_model.pb`, `variables/` and `assets.extra/tf_serving_warmup_requests`
(a few real requests the server replays on load, so the first client does not pay
for graph optimisation).
"""

from sparse_keras.export.saved_model import (
    WARMUP_FILE,
    default_class_names,
    export_for_serving,
    warmup_examples,
    write_warmup_requests,
)
from sparse_keras.export.signatures import OUTPUT_NAMES

__all__ = [
    "OUTPUT_NAMES",
    "WARMUP_FILE",
    "default_class_names",
    "export_for_serving",
    "warmup_examples",
    "write_warmup_requests",
]
