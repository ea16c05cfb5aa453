"""MNIST Sparse CNN-2 D3 (ablation): SGD lr 0.01 x0.8 per epoch, momentum 0.9, batch 64, 10 epochs,
boost 1.5 x0.85 per epoch (values of the authors' released experiments_paper.cfg)."""

from training.recipe import Recipe

RECIPE = Recipe(
    name="mnist_sparse_cnn2_d3",
    network="mnist_sparse_cnn2_d3",
    dataset="mnist",
    epochs=10,
    batch_size=64,
    learning_rate=0.01,
    lr_decay=0.8,
    momentum=0.9,
)
