"""FSDD (spoken digits, not GSC): the GSC recipe of Dense CNN-2 with dropout 0.5 on the hidden layer: SPEC §3 (the authors' released GSC config).

SGD, weight decay 0.01, momentum 0.9, lr x0.8 per epoch, batch 64, 20 epochs,
boost 1.5 x0.9 per epoch, class-balanced sampling, training augmentation, and the epoch with the
best validation accuracy is kept.

FSDD has 3,000 clips (2,400 for training after the validation hold-out) against
GSC's 18,620 digit clips; the recipe is kept unchanged (same epochs, batch size, learning
rate, weight decay, boost schedule, augmentation) so that only the data differ.
"""

from training.recipe import Recipe

RECIPE = Recipe(
    name="fsdd_dense_cnn2_dropout",
    network="gsc_dense_cnn2",
    dataset="fsdd",
    epochs=20,
    batch_size=64,
    learning_rate=0.01,
    lr_decay=0.8,
    momentum=0.9,
    weight_decay=0.01,
    boost_decay=0.9,
    model_overrides={"dropout": 0.5},
    select="best_val",
    class_balanced=True,
    augment=True,
)
