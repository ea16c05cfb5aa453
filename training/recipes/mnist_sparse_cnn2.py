"""MNIST Sparse CNN-2: SGD, sparse nets use no momentum, lr x0.8 per epoch, boost 1.5 x0.85 per epoch."""

from training.recipe import Recipe

RECIPE = Recipe(
    name="mnist_sparse_cnn2",
    network="mnist_sparse_cnn2",
    dataset="mnist",
    epochs=10,
    batch_size=64,
    first_epoch_batch_size=4,  # the released config trains epoch 0 at batch 4
    learning_rate=0.02,
    lr_decay=0.8,
    momentum=0.0,
)
