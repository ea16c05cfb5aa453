"""GSC Sparse CNN-2: SPEC §3 (the authors' released GSC config).

SGD, weight decay 0.01, no momentum, lr x0.9 per epoch, batch 16, 30 epochs,
boost 1.5 x0.9 per epoch, class-balanced sampling, training augmentation, and the epoch with the
best validation accuracy is kept.
"""

from training.recipe import Recipe

RECIPE = Recipe(
    name="gsc_sparse_cnn2",
    network="gsc_sparse_cnn2",
    dataset="gsc",
    epochs=30,
    batch_size=16,
    learning_rate=0.01,
    lr_decay=0.9,
    momentum=0.0,
    weight_decay=0.01,
    select="best_val",
    class_balanced=True,
    augment=True,
)
