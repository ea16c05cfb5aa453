"""GSC Dense CNN-2 with dropout 0.5 on the hidden layer: the gsc_dense_cnn2 recipe otherwise.

The paper (Table 2) reports the dense network with dropout 0.0 and 0.5.
"""

import dataclasses

from training.recipes.gsc_dense_cnn2 import RECIPE as DENSE_RECIPE

RECIPE = dataclasses.replace(
    DENSE_RECIPE, name="gsc_dense_cnn2_dropout", model_overrides={"dropout": 0.5}
)
