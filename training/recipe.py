"""A training recipe: the paper's hyper-parameters for one network (SPEC §3)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one network's training run.

    Attributes:
        name: Recipe name (also the results folder name).
        network: `sparse_keras.models` network name.
        dataset: "mnist", "gsc" or "fsdd".
        epochs: Number of epochs.
        batch_size: Training batch size.
        first_epoch_batch_size: Batch size of epoch 0 only (MNIST Sparse CNN-2: 4).
        learning_rate: Initial SGD learning rate.
        lr_decay: Factor applied to the learning rate after every epoch.
        momentum: SGD momentum.
        weight_decay: PyTorch-style (coupled) L2 weight decay, added to the gradient
            before momentum (`sparse_keras.optimizers.CoupledSGD`).
        model_overrides: `NetworkConfig` fields changed for this recipe.
        validation_size: Training examples held out to pick the best epoch (MNIST: 0,
            the last epoch is kept; GSC/FSDD use their validation split instead).
        select: "last" (report the last epoch) or "best_val" (the epoch with the best
            validation accuracy is kept).
        class_balanced: Class-balanced sampling of training batches.
        augment: Training-time data augmentation (audio).
        data_options: Extra keyword arguments of the dataset's `load` for every split
            (e.g. `{"silence": "recorded"}` for the v0.02 task's standard convention).
    """

    name: str
    network: str
    dataset: str
    epochs: int
    batch_size: int
    learning_rate: float
    lr_decay: float
    momentum: float
    weight_decay: float | None = None
    first_epoch_batch_size: int | None = None
    model_overrides: dict = dataclasses.field(default_factory=dict)
    validation_size: int = 0
    select: str = "last"
    class_balanced: bool = False
    augment: bool = False
    data_options: dict = dataclasses.field(default_factory=dict)

    def batch_size_for(self, epoch: int) -> int:
        if epoch == 0 and self.first_epoch_batch_size:
            return self.first_epoch_batch_size
        return self.batch_size

    def learning_rate_for(self, epoch: int) -> float:
        """The learning rate epoch `epoch` (from 0) trains with: `lr * lr_decay ** (epoch + 1)`.

        The released runner steps PyTorch's `StepLR` *before* each epoch's training
        (SPEC §3), so even epoch 0 trains at the decayed rate and the configured rate
        itself is never used.
        """
        return self.learning_rate * self.lr_decay ** (epoch + 1)


def list_recipes() -> list[str]:
    """Names of all recipes in `training/recipes/`."""
    from training import recipes

    return sorted(
        m.name for m in pkgutil.iter_modules(recipes.__path__) if not m.name.startswith("_")
    )


def get_recipe(name: str) -> Recipe:
    """The `Recipe` defined in `training/recipes/<name>.py`."""
    available = list_recipes()
    if name not in available:
        raise ValueError(f"Unknown recipe {name!r}; available: {', '.join(available)}.")
    return importlib.import_module(f"training.recipes.{name}").RECIPE
