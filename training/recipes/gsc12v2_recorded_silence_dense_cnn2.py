"""gsc12v2_dense_cnn2 with the standard 12-class convention: recorded background silence.

The tree's `_silence_` clips (real background noise) are the silence class in every
split, instead of the paper's all-zero clips. A second, separately labelled measurement;
the noise test still runs on the keyword and unknown test clips only.
"""

import dataclasses

from training.recipes.gsc12v2_dense_cnn2 import RECIPE as PAPER_CONVENTION

RECIPE = dataclasses.replace(
    PAPER_CONVENTION,
    name="gsc12v2_recorded_silence_dense_cnn2",
    data_options={"silence": "recorded"},
)
