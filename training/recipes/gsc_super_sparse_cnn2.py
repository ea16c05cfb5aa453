"""GSC Super-Sparse CNN-2: the gsc_sparse_cnn2 recipe with 25 epochs (SPEC §3).

SGD, weight decay 0.01, no momentum, lr x0.9 per epoch, batch 16, boost 1.5 x0.9 per epoch,
class-balanced sampling, training augmentation, best-validation epoch kept.
"""

import dataclasses

from training.recipes.gsc_sparse_cnn2 import RECIPE as SPARSE_RECIPE

RECIPE = dataclasses.replace(
    SPARSE_RECIPE, name="gsc_super_sparse_cnn2", network="gsc_super_sparse_cnn2", epochs=25
)
