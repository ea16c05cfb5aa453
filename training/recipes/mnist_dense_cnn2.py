"""MNIST Dense CNN-2: SGD, dense nets use momentum 0.9, lr x0.8 per epoch, boost 1.5 x0.85 per epoch."""

from training.recipe import Recipe

RECIPE = Recipe(
    name="mnist_dense_cnn2",
    network="mnist_dense_cnn2",
    dataset="mnist",
    epochs=15,
    batch_size=64,
    learning_rate=0.01,
    lr_decay=0.8,
    momentum=0.9,
)
