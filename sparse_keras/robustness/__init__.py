"""Noise robustness: noise curves, the noise score and the paper's Fig. 5.

The paper measures robustness by corrupting the *raw* test inputs at noise levels
`eta` in `{0.00, 0.05, ..., 0.50}` and counting correct answers (Fig. 5, Tables 1-2).
Each dataset names its noise protocol (`sparse_keras.data.dataset(name).add_noise`,
built on `sparse_keras.noise`):

- MNIST: in `[0, 1]` pixel space, before normalisation, set `int(784 * eta)` distinct
  random pixels of every image to the training mean plus two standard deviations (0.7469).
- Speech (GSC, Speech Commands v0.02, FSDD): `(1 - eta) * A + eta * w`, `w ~ U(-1, 1)`
  per sample, on the padded waveform before the log-mel features.

The *noise score* is the number of correct answers summed over all levels (MNIST: at
most 11 levels x 10,000 images = 110,000). `evaluate` runs the whole protocol and
returns a `NoiseReport` (`evaluation`, `report`); `noisy_sets` keeps the noisy test
set to score many models; `figures` draws Fig. 5A and 5B;
`sparse-keras evaluate` (`sparse_keras.cli.evaluate`) is the command-line face.
"""

from sparse_keras.robustness.evaluation import DEFAULT_NOISE_LEVELS, evaluate, load_model
from sparse_keras.robustness.figures import noise_examples_figure, plot_reports
from sparse_keras.robustness.noisy_sets import NoisyTestSet, noisy_test_set
from sparse_keras.robustness.report import NoiseReport, check_output_path

__all__ = [
    "DEFAULT_NOISE_LEVELS",
    "NoiseReport",
    "NoisyTestSet",
    "check_output_path",
    "evaluate",
    "load_model",
    "noise_examples_figure",
    "noisy_test_set",
    "plot_reports",
]
