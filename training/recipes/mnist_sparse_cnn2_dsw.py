"""MNIST Sparse CNN-2 DSW (ablation): SGD lr 0.01 x0.8 per epoch, momentum 0.9, batch 4 in the first epoch then 64, 10 epochs,
boost 1.5 x0.85 per epoch (values of the authors' released experiments_paper.cfg)."""

from training.recipe import Recipe

RECIPE = Recipe(
    name="mnist_sparse_cnn2_dsw",
    network="mnist_sparse_cnn2_dsw",
    dataset="mnist",
    epochs=10,
    batch_size=64,
    first_epoch_batch_size=4,  # the released config trains epoch 0 at batch 4
    learning_rate=0.01,
    lr_decay=0.8,
    momentum=0.9,
)
