"""Trains zoo networks with their recipes, one or several seeds, resumably.

    python -m training.train --recipe mnist_sparse_cnn2 --seeds 3

Per seed this writes (kept out of git) `training/runs/<recipe>/seed<k>/`: a checkpoint
after every epoch (`checkpoint.keras`, model + optimizer + k-winners state), its
`state.json`, TensorBoard logs and the final weights; and (committed)
`training/results/<recipe>/seed<k>.json`: clean test accuracy, accuracy at every
noise level, the noise score, epochs, wall time, package versions and git commit.
An interrupted run resumes from its last completed epoch; each epoch's data order
is derived from (seed, epoch), so a resumed run sees the same batches as an
uninterrupted one.

`--strategy mirrored` trains on all local GPUs, `--strategy multiworker` on a cluster
described by `TF_CONFIG` (docs/distributed.md): every step processes the recipe's
global batch, split over the replicas.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from sparse_keras import distribute, models
from sparse_keras.callbacks import BoostDecay, DutyCycleMonitor
from training.recipe import Recipe, get_recipe, list_recipes

ROOT = pathlib.Path(__file__).resolve().parent
RUNS_DIR = ROOT / "runs"
RESULTS_DIR = ROOT / "results"


def package_versions() -> dict[str, str]:
    import sparse_keras

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "sparse_keras": sparse_keras.__version__,
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ----------------------------------------------------------------------------- data


class TrainingData:
    """The datasets one recipe trains and evaluates on."""

    def __init__(self, recipe: Recipe, data_dir: str | None, max_train_examples: int | None):
        self.recipe = recipe
        self.data_dir = data_dir
        self.max_train_examples = max_train_examples
        if recipe.dataset == "mnist":
            from sparse_keras.data import mnist

            split = "train"
            self._x, self._y = mnist.load_arrays(
                split, data_dir, validation_size=recipe.validation_size
            )
            if max_train_examples:
                self._x, self._y = self._x[:max_train_examples], self._y[:max_train_examples]
        elif recipe.dataset not in ("gsc", "fsdd"):
            raise ValueError(f"Recipe {recipe.name!r} names unknown dataset {recipe.dataset!r}.")

    def train(self, epoch: int, seed: int) -> tf.data.Dataset:
        batch = self.recipe.batch_size_for(epoch)
        if self.recipe.dataset == "mnist":
            from sparse_keras.data.mnist import normalize_images

            order = np.random.default_rng([seed, epoch]).permutation(len(self._y))
            ds = tf.data.Dataset.from_tensor_slices(
                (self._x[order][..., None], self._y[order])
            ).batch(batch)
            ds = ds.map(
                lambda x, y: (normalize_images(tf.cast(x, tf.float32) / 255.0), y),
                num_parallel_calls=4,
            )
            return ds.prefetch(tf.data.AUTOTUNE)
        module = self._audio_module()
        ds = module.load(
            "train",
            batch_size=batch,
            data_dir=self.data_dir,
            augment=self.recipe.augment,
            seed=seed * 1000 + epoch,
            class_balanced=self.recipe.class_balanced,
        )
        if self.max_train_examples:
            ds = ds.take(max(1, self.max_train_examples // batch))
        return ds

    def validation(self) -> tf.data.Dataset | None:
        if self.recipe.dataset == "mnist":
            if not self.recipe.validation_size:
                return None
            from sparse_keras.data import mnist

            return mnist.load(
                "validation", 1000, self.data_dir, validation_size=self.recipe.validation_size
            )
        return self._audio_module().load("validation", batch_size=256, data_dir=self.data_dir)

    def _audio_module(self):
        import importlib

        return importlib.import_module(f"sparse_keras.data.{self.recipe.dataset}")


# ----------------------------------------------------------------------------- training


def compile_for_epoch(model: keras.Model, recipe: Recipe, optimizer=None) -> keras.Model:
    if optimizer is None:
        optimizer = keras.optimizers.SGD(
            learning_rate=recipe.learning_rate,
            momentum=recipe.momentum,
            weight_decay=recipe.weight_decay,
        )
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class RunDir:
    """A seed's working folder: checkpoint, state, logs."""

    @classmethod
    def for_seed(
        cls, runs_dir: pathlib.Path, recipe: Recipe, seed: int, strategy: tf.distribute.Strategy
    ) -> RunDir:
        path = runs_dir / recipe.name / f"seed{seed}"
        if not distribute.is_chief(strategy):
            # Other workers of a cluster keep their own (identical) checkpoints apart
            # from the chief's, as MultiWorkerMirroredStrategy recommends.
            path = path / f"worker{strategy.cluster_resolver.task_id}"
        return cls(path)

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.checkpoint = path / "checkpoint.keras"
        self.state_file = path / "state.json"
        self.best_weights = path / "best.weights.h5"
        self.final_weights = path / "final.weights.h5"

    def state(self) -> dict:
        if self.state_file.exists():
            return json.loads(self.state_file.read_text())
        return {
            "epochs_done": 0,
            "history": [],
            "train_seconds": 0.0,
            "best_val_accuracy": None,
            "best_epoch": None,
        }

    def save(self, model: keras.Model, state: dict) -> None:
        # Write to temporary names first so that a kill mid-save leaves the previous
        # epoch's checkpoint usable.
        tmp_ckpt = self.path / "checkpoint.tmp.keras"
        model.save(tmp_ckpt)
        tmp_ckpt.replace(self.checkpoint)
        tmp_state = self.path / "state.tmp.json"
        tmp_state.write_text(json.dumps(state, indent=1))
        tmp_state.replace(self.state_file)


def train_seed(
    recipe: Recipe,
    seed: int,
    runs_dir: pathlib.Path = RUNS_DIR,
    data_dir: str | None = None,
    max_train_examples: int | None = None,
    epochs: int | None = None,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[keras.Model, dict]:
    """Trains (or resumes) one seed of a recipe; returns the selected model and the run state.

    The model is built (or restored) inside `strategy.scope()`; every step trains on
    one of the recipe's global batches, split over the strategy's replicas.
    """
    strategy = strategy or tf.distribute.get_strategy()
    run = RunDir.for_seed(runs_dir, recipe, seed, strategy)
    run.path.mkdir(parents=True, exist_ok=True)
    epochs = epochs or recipe.epochs
    state = run.state()
    data = TrainingData(recipe, data_dir, max_train_examples)
    with strategy.scope():
        if state["epochs_done"] and run.checkpoint.exists():
            model = keras.models.load_model(run.checkpoint)
            print(
                f"[{recipe.name} seed {seed}] resuming after epoch {state['epochs_done']}",
                flush=True,
            )
        else:
            keras.utils.set_random_seed(seed)
            model = models.build(recipe.network, seed=seed, **recipe.model_overrides)
            compile_for_epoch(model, recipe)
            state = run.state() | {"epochs_done": 0}
    validation = None
    if recipe.select == "best_val":
        validation = distribute.distribute_global_batches(strategy, data.validation)
    tensorboard = keras.callbacks.TensorBoard(run.path / "tensorboard", update_freq="epoch")
    callbacks = [
        BoostDecay(recipe.boost_decay),
        keras.callbacks.LearningRateScheduler(recipe.learning_rate_for),
        DutyCycleMonitor(),
        tensorboard,
    ]
    for epoch in range(state["epochs_done"], epochs):
        keras.utils.set_random_seed(seed * 1000 + epoch)
        start = time.perf_counter()
        train = data.train(epoch, seed)
        # A distributed dataset's length is unknown to Keras: give it the number of steps.
        steps = int(train.cardinality())
        history = model.fit(
            distribute.distribute_global_batches(strategy, lambda train=train: train),
            steps_per_epoch=steps if steps > 0 and strategy.num_replicas_in_sync > 1 else None,
            initial_epoch=epoch,
            epochs=epoch + 1,
            validation_data=validation,
            callbacks=callbacks,
            shuffle=False,  # the epoch's order is already fixed by (seed, epoch)
            verbose=verbose,
        )
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        state["train_seconds"] += time.perf_counter() - start
        state["history"].append({"epoch": epoch, **logs})
        state["epochs_done"] = epoch + 1
        if validation is not None:
            val_acc = logs["val_accuracy"]
            if state["best_val_accuracy"] is None or val_acc > state["best_val_accuracy"]:
                state["best_val_accuracy"], state["best_epoch"] = val_acc, epoch
                model.save_weights(run.best_weights)
        run.save(model, state)
    if recipe.select == "best_val" and run.best_weights.exists():
        model.load_weights(run.best_weights)
    save_inference_weights(model, recipe, seed, run.final_weights)
    return model, state


def save_inference_weights(
    model: keras.Model, recipe: Recipe, seed: int, path: pathlib.Path
) -> None:
    """Saves a trained model's weights without the optimizer's state (what the zoo ships).

    `save_weights` of a compiled model also stores the optimizer's slots (momentum
    doubles the file); a fresh, uncompiled copy of the network holds only the model's
    own variables: weights, masks, batch-norm statistics and k-winners state.
    """
    clean = models.build(recipe.network, seed=seed, **recipe.model_overrides)
    clean.set_weights(model.get_weights())
    clean.save_weights(path)


def evaluate_and_record(
    model: keras.Model,
    recipe: Recipe,
    seed: int,
    state: dict,
    results_dir: pathlib.Path = RESULTS_DIR,
    data_dir: str | None = None,
    command: str | None = None,
) -> dict:
    """Clean accuracy and noise curve of a trained model, written as the seed's result JSON."""
    from sparse_keras import robustness

    report = robustness.evaluate(model, recipe.dataset, seed=seed, data_dir=data_dir)
    report_dict = report.to_dict()
    result = {
        "recipe": recipe.name,
        "network": recipe.network,
        "dataset": recipe.dataset,
        "seed": seed,
        "clean_accuracy": report_dict["accuracies"][0]
        if report_dict["noise_levels"][0] == 0
        else None,
        "noise": report_dict,
        "noise_score": report_dict["noise_score"],
        "epochs": state["epochs_done"],
        "selected_epoch": state["best_epoch"]
        if recipe.select == "best_val"
        else state["epochs_done"] - 1,
        "selection": (
            "epoch with the best validation accuracy"
            if recipe.select == "best_val"
            else "last epoch (no test-set peeking)"
        ),
        "train_seconds": round(state["train_seconds"], 1),
        "history": state["history"],
        "recipe_config": {k: v for k, v in recipe.__dict__.items()},
        "versions": package_versions(),
        "git_commit": git_commit(),
        "command": command or " ".join(sys.argv),
    }
    out = results_dir / recipe.name / f"seed{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"[{recipe.name} seed {seed}] clean accuracy {result['clean_accuracy']:.4f}, "
        f"noise score {result['noise_score']} -> {out}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], prog="python -m training.train"
    )
    parser.add_argument("--recipe", required=True, help=f"one of: {', '.join(list_recipes())}")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--epochs", type=int, default=None, help="override the recipe's epochs (smoke runs)"
    )
    parser.add_argument(
        "--max-train-examples", type=int, default=None, help="train on a subset (smoke runs)"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--runs-dir", type=pathlib.Path, default=RUNS_DIR)
    parser.add_argument("--results-dir", type=pathlib.Path, default=RESULTS_DIR)
    parser.add_argument("--verbose", default="auto", help="Keras fit verbosity: auto, 0, 1 or 2")
    parser.add_argument(
        "--strategy",
        choices=distribute.STRATEGIES,
        default="default",
        help="tf.distribute strategy: default (one device), mirrored (all local GPUs), "
        "multiworker (the cluster in TF_CONFIG; see docs/distributed.md)",
    )
    parser.add_argument(
        "--skip-evaluation",
        action="store_true",
        help="train only; evaluate later with --evaluate-only",
    )
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="evaluate the finished runs' final weights again",
    )
    args = parser.parse_args(argv)
    # Before any other TensorFlow work: the multi-worker runtime must start first.
    strategy = distribute.make_strategy(args.strategy)
    recipe = get_recipe(args.recipe)
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    command = "python -m training.train " + " ".join(argv if argv is not None else sys.argv[1:])
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run = RunDir.for_seed(args.runs_dir, recipe, seed, strategy)
        if args.evaluate_only:
            if not run.final_weights.exists():
                raise FileNotFoundError(
                    f"No finished run for {recipe.name} seed {seed}: {run.final_weights} is missing."
                )
            state = run.state()
            model = models.build(recipe.network, seed=seed, **recipe.model_overrides)
            model.load_weights(run.final_weights)
            command = state.get("command", command)
        else:
            model, state = train_seed(
                recipe,
                seed,
                args.runs_dir,
                args.data_dir,
                args.max_train_examples,
                args.epochs,
                verbose,
                strategy,
            )
            state["command"] = command
            run.state_file.write_text(json.dumps(state, indent=1))
        if not distribute.is_chief(strategy):
            continue  # the chief alone writes the results
        if not args.skip_evaluation:
            if not args.evaluate_only and args.strategy != "default":
                # Evaluate a one-device copy: a distributed predict would need every
                # worker, and the weights are the same.
                model = models.build(recipe.network, seed=seed, **recipe.model_overrides)
                model.load_weights(run.final_weights)
            evaluate_and_record(
                model, recipe, seed, state, args.results_dir, args.data_dir, command
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
