"""The gsc_dense_cnn2 recipe, unchanged, on FSDD (real spoken digits, not GSC).

FSDD has 3,000 clips (2,400 for training after the validation hold-out) against GSC's
18,620 digit clips; the GSC recipe is kept as it is (epochs, batch size, learning rate,
weight decay, boost schedule, class balancing, augmentation, best-validation epoch) so
that only the data differ.
"""

import dataclasses

from training.recipes.gsc_dense_cnn2 import RECIPE as GSC_RECIPE

RECIPE = dataclasses.replace(GSC_RECIPE, name="fsdd_dense_cnn2", dataset="fsdd")
