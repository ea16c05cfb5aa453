"""MNIST Sparse CNN-2 DSW (ablation): SGD, sparse nets use no momentum, lr x0.8 per epoch, boost 1.5 x0.85 per epoch."""

from training.recipe import Recipe

RECIPE = Recipe(
    name="mnist_sparse_cnn2_dsw",
    network="mnist_sparse_cnn2_dsw",
    dataset="mnist",
    epochs=15,
    batch_size=64,
    learning_rate=0.01,
    lr_decay=0.8,
    momentum=0.0,
    boost_decay=0.85,
)
