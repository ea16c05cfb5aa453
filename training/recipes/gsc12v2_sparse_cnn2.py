"""The gsc_sparse_cnn2 recipe, unchanged, on Speech Commands v0.02's 12-class keyword task.

Paper conventions (SPEC §4): all-zero silence clips (10% of training), keywords and
unknown clips only in validation and test. Data: the v0.02 test-set recordings re-split
by speaker (sparse_keras.data.gsc12v2), so the numbers are not Table 2's.
"""

import dataclasses

from training.recipes.gsc_sparse_cnn2 import RECIPE as GSC_RECIPE

RECIPE = dataclasses.replace(GSC_RECIPE, name="gsc12v2_sparse_cnn2", dataset="gsc12v2")
