"""GSC Dense CNN-2 (dropout 0): SPEC §3 (the authors' released GSC config).

SGD, weight decay 0.01, momentum 0.9, lr x0.8 per epoch, batch 64, 20 epochs,
boost 1.5 x0.9 per epoch, class-balanced sampling, training augmentation, and the epoch with the
best validation accuracy is kept.
"""

from training.recipe import Recipe

RECIPE = Recipe(
    name="gsc_dense_cnn2",
    network="gsc_dense_cnn2",
    dataset="gsc",
    epochs=20,
    batch_size=64,
    learning_rate=0.01,
    lr_decay=0.8,
    momentum=0.9,
    weight_decay=0.01,
    select="best_val",
    class_balanced=True,
    augment=True,
)
