"""Records our training steps for a step-by-step comparison with the released code (issue 18).

    python -m training.side_by_side                       # MNIST Sparse CNN-2, seed 0
    <torch-env>/bin/python training/side_by_side_torch.py  # the PyTorch side, then the report

The five fixes of issue 18 still leave Sparse CNN-2 below the paper, so this looks for a
further difference by running the same steps in both frameworks. It builds the network
exactly as `training.train` does (seed, initialiser, optimizer, learning rate of each
epoch, the runner's own batches in its own order) and trains it one `train_on_batch` at
a time:

- phase A: the first `--steps-a` steps of epoch 0 (batch 4 for Sparse CNN-2), long
  enough for the duty-cycle period to pass `min(1000, samples seen)`'s switch;
- the epoch boundary: `BoostDecay` sets the boost strength of epoch 1 (β·f) and the
  learning rate becomes epoch 1's;
- phase B: the first `--steps-b` steps of epoch 1 (batch 64).

It stores the batches, every step's loss and full snapshots of the model's state
(weights, masks, duty cycles, boost strengths, samples seen) before and after chosen
steps, to `training/runs/side_by_side/<recipe>_seed<k>.npz` (gitignored). The PyTorch
side (`training/side_by_side_torch.py`, which needs only torch and NumPy) re-runs each
snapshot's step from the same state and also trains freely from the first snapshot,
and writes `training/results/side_by_side.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import keras
import numpy as np

from sparse_keras import models, zoo
from sparse_keras.callbacks import BoostDecay
from sparse_keras.data import mnist
from training import train as runner
from training.recipe import get_recipe, list_recipes

OUT_DIR = runner.RUNS_DIR / "side_by_side"


def snapshot_steps(steps_a: int, steps_b: int) -> list[int]:
    """Global step numbers whose state before *and* after the step is stored.

    Steps of phase B are numbered after phase A's (`steps_a + j`). The pairs cover the
    first steps, the middle, both sides of the duty-cycle period's switch at 1000
    samples (step 249 -> 250 at batch 4), and both phases' last steps.
    """
    chosen = {0, 1, 10, 100, 249, 250, steps_a - 1}
    chosen |= {steps_a, steps_a + 1, steps_a + steps_b // 2, steps_a + steps_b - 1}
    return sorted(s for s in chosen if 0 <= s < steps_a + steps_b)


def threshold_ties(model: keras.Model, images: np.ndarray) -> dict[str, dict[str, int]]:
    """Per k-winners layer, the samples whose k-th and (k+1)-th boosted values are equal.

    At such a tie the layer's choice among the tied units is a convention (ours: the
    first in H·W·C order; `torch.topk` documents none), so these samples are where two
    faithful implementations may keep different winners. Counted at the training `k`
    and the inference `k`, on the layer's input as the trained network computes it
    (inference mode upstream).

    Args:
        model: A network with `KWinners` layers, its boost state as trained.
        images: Preprocessed inputs `[N, *model input shape]`.

    Returns:
        `{layer name: {"training_k": count, "inference_k": count, "samples": N}}`.
    """
    counts = {}
    for layer in model.layers:
        if not hasattr(layer, "k_inference") or layer.is_relu:
            continue
        source = keras.Model(model.inputs, layer.input)
        values = np.asarray(source.predict(images, batch_size=500, verbose=0))
        boosted = values.reshape(len(values), -1) * np.resize(
            np.asarray(layer.boost_factors()), values[0].size
        )
        ranked = -np.sort(-boosted, axis=1)
        counts[layer.name] = {
            name: int((ranked[:, k - 1] == ranked[:, k]).sum())
            for name, k in (("training_k", layer.k), ("inference_k", layer.k_inference))
            if k < ranked.shape[1]
        }
        counts[layer.name]["samples"] = len(values)
    return counts


def tie_rule_effect(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Classes at inference when conv k-winners break ties in C·H·W order instead of ours.

    Ours keeps the first tied unit in H·W·C order (Keras's layout); the released code's
    tensors are C·H·W. For each conv k-winners layer in turn (the others unchanged), the
    winners are chosen again with ties going to the first in C·H·W order.

    Args:
        model: A network whose conv `KWinners` layers are followed by the rest of a chain.
        images: Preprocessed inputs `[N, *input shape]`.
        labels: int `[N]`.

    Returns:
        `{"samples": N, "accuracy": ours, "layers": {name: {"accuracy": with C·H·W ties,
        "classes_changed": count}}}`.
    """
    ours = np.argmax(model.predict(images, batch_size=500, verbose=0), axis=1)
    result = {"samples": len(labels), "accuracy": float(np.mean(ours == labels)), "layers": {}}
    layers = model.layers
    for i, layer in enumerate(layers):
        if not hasattr(layer, "k_inference") or layer.is_relu or len(layer.input.shape) != 4:
            continue
        values = np.asarray(
            keras.Model(model.inputs, layer.input).predict(images, batch_size=500, verbose=0)
        )
        boosted = (values * np.asarray(layer.boost_factors())).transpose(0, 3, 1, 2)
        flat = boosted.reshape(len(values), -1)
        # A stable sort keeps tied values in C·H·W index order.
        winners = np.argsort(-flat, axis=1, kind="stable")[:, : layer.k_inference]
        mask = np.zeros_like(flat)
        np.put_along_axis(mask, winners, 1.0, axis=1)
        selected = values * mask.reshape(boosted.shape).transpose(0, 2, 3, 1)
        rest_input = keras.Input(values.shape[1:])
        h = rest_input
        for later in layers[i + 1 :]:
            h = later(h)
        classes = np.argmax(
            keras.Model(rest_input, h).predict(selected, batch_size=500, verbose=0), axis=1
        )
        result["layers"][layer.name] = {
            "accuracy": float(np.mean(classes == labels)),
            "classes_changed": int(np.sum(classes != ours)),
        }
    return result


def _state(model: keras.Model) -> dict[str, np.ndarray]:
    return {w.path: np.array(w.numpy()) for w in model.weights}


def record(
    recipe_name: str = "mnist_sparse_cnn2",
    seed: int = 0,
    steps_a: int = 300,
    steps_b: int = 50,
    data_dir: str | None = None,
    out: pathlib.Path | None = None,
    ties_of: str | None = None,
    ties_samples: int = 10_000,
) -> pathlib.Path:
    """Trains `steps_a + steps_b` steps as the runner would and stores what the comparison needs.

    Args:
        recipe_name: An MNIST recipe (`training.recipe.list_recipes()`).
        seed: The run's seed (network, mask and data order, as `training.train`).
        steps_a: Steps of epoch 0, >= 1.
        steps_b: Steps of epoch 1, >= 1.
        data_dir: MNIST IDX folder (default: `SPARSE_KERAS_DATA` or the cache).
        out: The `.npz` to write (default `OUT_DIR / f"{recipe}_seed{seed}.npz"`).
        ties_of: A zoo model (e.g. "mnist_sparse_cnn2") whose `threshold_ties` on the
            first `ties_samples` training images, and `tie_rule_effect` on the first
            `ties_samples` test images, are stored too; None: skipped.
        ties_samples: How many training (and test) images `ties_of` is measured on.

    Returns:
        The path written.

    Raises:
        ValueError: for an unknown or non-MNIST recipe or non-positive step counts.
    """
    if recipe_name not in list_recipes():
        raise ValueError(f"Unknown recipe {recipe_name!r}; expected one of {list_recipes()}.")
    recipe = get_recipe(recipe_name)
    if recipe.dataset != "mnist":
        raise ValueError(
            f"side_by_side compares MNIST recipes only; {recipe_name!r} trains on "
            f"{recipe.dataset!r}."
        )
    if steps_a < 1 or steps_b < 1:
        raise ValueError(f"steps_a and steps_b must be >= 1, got {steps_a} and {steps_b}.")
    # Loaded first: an unknown name fails before any training.
    ties_model = zoo.load(ties_of) if ties_of is not None else None
    keras.utils.set_random_seed(seed)
    model = models.build(recipe.network, seed=seed, **recipe.model_overrides)
    runner.compile_for_epoch(model, recipe)
    data = runner.TrainingData(recipe, data_dir, None)
    boost = BoostDecay()
    boost.set_model(model)
    snaps = set(snapshot_steps(steps_a, steps_b))
    states: dict[int, dict[str, np.ndarray]] = {}
    losses, learning_rates, batches_x, batches_y = [], [], [], []
    step = 0
    for epoch, steps in ((0, steps_a), (1, steps_b)):
        # What fit's callbacks do at the start of an epoch (training.train_seed).
        boost.on_epoch_begin(epoch)
        model.optimizer.learning_rate = recipe.learning_rate_for(epoch)
        keras.utils.set_random_seed(seed * 1000 + epoch)
        for x, y in data.train(epoch, seed).take(steps):
            if step in snaps:
                states[step] = _state(model)
            result = model.train_on_batch(x, y, return_dict=True)
            losses.append(float(result["loss"]))
            learning_rates.append(recipe.learning_rate_for(epoch))
            batches_x.append(x.numpy())
            batches_y.append(y.numpy())
            step += 1
            if step - 1 in snaps:
                states[step] = _state(model)
    ties, tie_rule = {}, {}
    if ties_of is not None:
        images, _ = mnist.load_arrays("train", data_dir)
        images = np.asarray(data.dataset.preprocess(images[:ties_samples]))
        ties = threshold_ties(ties_model, images)
        test_images, test_labels = mnist.load_arrays("test", data_dir)
        test_images = np.asarray(data.dataset.preprocess(test_images[:ties_samples]))
        tie_rule = tie_rule_effect(ties_model, test_images, test_labels[:ties_samples])
    out = out or OUT_DIR / f"{recipe_name}_seed{seed}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    k_winners = [layer for layer in model.layers if hasattr(layer, "k_inference")]
    np.savez_compressed(
        out,
        recipe=recipe_name,
        seed=seed,
        steps_a=steps_a,
        steps_b=steps_b,
        git_commit=runner.git_commit() or "unknown",
        momentum=recipe.momentum,
        ties_of=ties_of or "",
        ties_trained=json.dumps(ties),
        tie_rule_effect=json.dumps(tie_rule),
        weight_decay=recipe.weight_decay or 0.0,
        loss=np.array(losses),
        learning_rate=np.array(learning_rates),
        # Batches differ in size between the phases: one array per step.
        **{f"x{i}": x for i, x in enumerate(batches_x)},
        **{f"y{i}": y for i, y in enumerate(batches_y)},
        k_train=np.array([layer.k for layer in k_winners]),
        k_names=np.array([layer.name for layer in k_winners]),
        boost_factor=np.array([layer.boost_strength_factor for layer in k_winners]),
        duty_cycle_period=np.array([layer.duty_cycle_period for layer in k_winners]),
        **{
            f"state{s}/{path}": value
            for s, state in sorted(states.items())
            for path, value in state.items()
        },
    )
    print(f"{step} steps of {recipe_name} seed {seed} recorded -> {out}")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="mnist_sparse_cnn2")
    parser.add_argument("--seed", type=runner._non_negative, default=0)
    parser.add_argument("--steps-a", type=runner._positive, default=300)
    parser.add_argument("--steps-b", type=runner._positive, default=50)
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder")
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument(
        "--ties-of",
        default="mnist_sparse_cnn2",
        help="zoo model whose k-winners threshold ties are counted too ('' to skip)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        record(
            args.recipe,
            args.seed,
            args.steps_a,
            args.steps_b,
            args.data_dir,
            args.out,
            ties_of=args.ties_of or None,
        )
    except ValueError as err:
        print(f"side_by_side: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
