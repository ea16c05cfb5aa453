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
import importlib.util
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
from sparse_keras.data import DATASETS, mnist
from sparse_keras.optimizers import CoupledSGD
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
    """The datasets one recipe trains and evaluates on (`sparse_keras.data` descriptors)."""

    def __init__(self, recipe: Recipe, data_dir: str | None, max_train_examples: int | None):
        self.recipe = recipe
        self.data_dir = data_dir
        self.max_train_examples = max_train_examples
        if recipe.dataset not in DATASETS:
            raise ValueError(
                f"Recipe {recipe.name!r} names unknown dataset {recipe.dataset!r}; expected one "
                f"of {tuple(DATASETS)}."
            )
        self.dataset = DATASETS[recipe.dataset]
        if recipe.dataset == "mnist":
            # The released runner's MNIST order: the training images in memory, permuted
            # per (seed, epoch).
            self._x, self._y = mnist.load_arrays(
                "train", data_dir, validation_size=recipe.validation_size
            )
            if max_train_examples:
                self._x, self._y = self._x[:max_train_examples], self._y[:max_train_examples]

    def train(self, epoch: int, seed: int) -> tf.data.Dataset:
        batch = self.recipe.batch_size_for(epoch)
        if self.recipe.dataset == "mnist":
            order = np.random.default_rng([seed, epoch]).permutation(len(self._y))
            ds = tf.data.Dataset.from_tensor_slices((self._x[order], self._y[order])).batch(batch)
            ds = ds.map(lambda x, y: (self.dataset.preprocess(x), y), num_parallel_calls=4)
            return ds.prefetch(tf.data.AUTOTUNE)
        ds = self.dataset.load(
            "train",
            batch_size=batch,
            data_dir=self.data_dir,
            augment=self.recipe.augment,
            seed=seed * 1000 + epoch,
            class_balanced=self.recipe.class_balanced,
            **self.recipe.data_options,
        )
        if self.max_train_examples:
            ds = ds.take(max(1, self.max_train_examples // batch))
        return ds

    def validation(self) -> tf.data.Dataset | None:
        if self.recipe.dataset == "mnist":
            if not self.recipe.validation_size:
                return None
            return self.dataset.load(
                "validation", 1000, self.data_dir, validation_size=self.recipe.validation_size
            )
        return self.dataset.load(
            "validation", batch_size=256, data_dir=self.data_dir, **self.recipe.data_options
        )


# ----------------------------------------------------------------------------- training


def make_optimizer(recipe: Recipe) -> keras.optimizers.Optimizer:
    """PyTorch's SGD as the released runner used it: coupled weight decay (SPEC §3)."""
    return CoupledSGD(
        learning_rate=recipe.learning_rate_for(0),
        momentum=recipe.momentum,
        coupled_weight_decay=recipe.weight_decay or 0.0,
    )


def compile_for_epoch(model: keras.Model, recipe: Recipe, optimizer=None) -> keras.Model:
    model.compile(
        optimizer=optimizer or make_optimizer(recipe),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class CorruptRunStateError(RuntimeError):
    """A run folder whose state file cannot be read or names a missing checkpoint."""


class RunDir:
    """A seed's working folder: per-epoch checkpoint, the state that names it, logs.

    The state file is the commit point: a checkpoint is written first under its own
    epoch's name, then `state.json` is atomically replaced by one that names it, then
    older checkpoints are removed. A kill at any moment leaves a state and the
    checkpoint it names, both of the same epoch.
    """

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
        self.state_file = path / "state.json"
        self.best_weights = path / "best.weights.h5"
        self.final_weights = path / "final.weights.h5"

    def _fresh_state(self) -> dict:
        return {
            "epochs_done": 0,
            "history": [],
            "train_seconds": 0.0,
            "best_val_accuracy": None,
            "best_epoch": None,
            "checkpoint": None,
        }

    def _corrupt(self, why: str) -> CorruptRunStateError:
        return CorruptRunStateError(
            f"Run state {self.state_file} {why}. Delete the folder {self.path} (or pass "
            "--restart) to train this seed from scratch."
        )

    def state(self) -> dict:
        if not self.state_file.exists():
            return self._fresh_state()
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise self._corrupt(f"is unreadable ({err})") from err
        if not isinstance(state, dict) or not isinstance(state.get("epochs_done"), int):
            raise self._corrupt("is not a run state (no integer 'epochs_done')")
        if state["epochs_done"]:
            checkpoint = state.get("checkpoint")
            if not checkpoint or not (self.path / checkpoint).exists():
                raise self._corrupt(f"names checkpoint {checkpoint!r}, which is missing")
            if len(state.get("history", [])) != state["epochs_done"]:
                raise self._corrupt("has a history whose length differs from epochs_done")
        return state

    def checkpoint_path(self, state: dict) -> pathlib.Path | None:
        return self.path / state["checkpoint"] if state.get("checkpoint") else None

    def write_state(self, state: dict) -> None:
        _atomic_write_text(self.state_file, json.dumps(state, indent=1))

    def save(self, model: keras.Model, state: dict) -> None:
        name = f"checkpoint-epoch{state['epochs_done']}.keras"
        tmp = self.path / f"{name}.tmp.keras"
        model.save(tmp)
        tmp.replace(self.path / name)
        self.write_state(state | {"checkpoint": name})
        state["checkpoint"] = name
        for old in self.path.glob("checkpoint*.keras"):
            if old.name != name:
                old.unlink()


def _atomic_write_text(path: pathlib.Path, text: str) -> None:
    """Writes `text` to `path` through a temporary file and a rename (all or nothing)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def tensorboard_callbacks(log_dir: pathlib.Path, recipe_name: str, seed: int) -> list:
    """TensorBoard logging when `tensorboard` is installed (the `reproduce` extra), else none.

    The logs are a convenience for watching a run; training and its results do not depend
    on them, so a missing `tensorboard` costs a one-line note, not the run.
    """
    if importlib.util.find_spec("tensorboard") is None:
        print(
            f"[{recipe_name} seed {seed}] tensorboard is not installed: no TensorBoard logs "
            '(pip install -e ".[reproduce]" to get them)',
            flush=True,
        )
        return []
    return [keras.callbacks.TensorBoard(log_dir, update_freq="epoch")]


class EpochEvaluator:
    """The released runner's test after every epoch: clean accuracy and the noise score.

    The noisy test sets are drawn once (the same noise as `robustness.evaluate(seed=...)`)
    and reused after every epoch. Sparse networks are evaluated through the
    `sparse_keras.compute` inference path, dense ones through Keras; `check_fast_path`
    compares the fast path's classes with Keras's on the clean test set.
    """

    def __init__(self, recipe: Recipe, seed: int, data_dir: str | None, max_examples: int | None):
        from sparse_keras import robustness

        self.recipe = recipe
        self.test_set = robustness.noisy_test_set(
            recipe.dataset, seed=seed, data_dir=data_dir, max_examples=max_examples
        )

    def _uses_fast_path(self, model: keras.Model) -> bool:
        # Always the sparse path for such a network (never the evaluation engine's
        # fallback to Keras): every epoch of every seed is scored the same way, and
        # `check_fast_path` counts the classes that differ from Keras's at the end.
        from sparse_keras.robustness.engines import gains_from_sparse_path

        return gains_from_sparse_path(model)

    def predictor(self, model: keras.Model):
        if not self._uses_fast_path(model):
            return model
        from sparse_keras.compute import sparse_inference

        return sparse_inference(model)

    def __call__(self, model: keras.Model) -> dict:
        report = self.test_set.evaluate(self.predictor(model), model_name=self.recipe.name)
        return {
            "test_accuracy": report.accuracies[0] if report.noise_levels[0] == 0 else None,
            "noise_correct": list(report.correct),
            "noise_score": report.noise_score,
        }

    def check_fast_path(self, model: keras.Model) -> dict | None:
        """Classes of the fast path against Keras's on the clean test images."""
        if not self._uses_fast_path(model):
            return None
        clean = self.test_set.features[0]
        fast = np.argmax(self.predictor(model).predict(clean, batch_size=1000), axis=1)
        keras_classes = np.argmax(model.predict(clean, batch_size=1000, verbose=0), axis=1)
        return {
            "examples": int(len(clean)),
            "differing_classes": int(np.sum(fast != keras_classes)),
        }


def _validation_accuracy(model: keras.Model, validation) -> float:
    correct = total = 0
    for features, labels in validation:
        logits = model(features, training=False)
        correct += int(np.sum(np.argmax(logits, axis=1) == np.asarray(labels)))
        total += len(labels)
    return correct / total


def train_seed(
    recipe: Recipe,
    seed: int,
    runs_dir: pathlib.Path = RUNS_DIR,
    data_dir: str | None = None,
    max_train_examples: int | None = None,
    epochs: int | None = None,
    verbose: int | str = "auto",
    strategy: tf.distribute.Strategy | None = None,
    evaluate_every_epoch: bool = True,
    max_test_examples: int | None = None,
) -> tuple[keras.Model, dict]:
    """Trains (or resumes) one seed of a recipe; returns the held-out model and the run state.

    After every epoch (as the released runner) the model is tested: clean test accuracy
    and noise score go into the epoch's `history` entry, beside the training logs, the
    learning rate, and (audio) the validation accuracy. The returned model is the last
    epoch's (MNIST) or the best-validation epoch's (audio): never chosen on the test set.

    The model is built (or restored) inside `strategy.scope()`; every step trains on
    one of the recipe's global batches, split over the strategy's replicas.
    """
    strategy = strategy or tf.distribute.get_strategy()
    run = RunDir.for_seed(runs_dir, recipe, seed, strategy)
    epochs = epochs or recipe.epochs
    state = run.state()  # before creating anything: a corrupt state changes nothing
    run.path.mkdir(parents=True, exist_ok=True)
    data = TrainingData(recipe, data_dir, max_train_examples)
    with strategy.scope():
        if state["epochs_done"]:
            model = keras.models.load_model(run.checkpoint_path(state))
            print(
                f"[{recipe.name} seed {seed}] resuming after epoch {state['epochs_done']}",
                flush=True,
            )
        else:
            keras.utils.set_random_seed(seed)
            model = models.build(recipe.network, seed=seed, **recipe.model_overrides)
            compile_for_epoch(model, recipe)
    validation = None
    if recipe.select == "best_val":
        validation = data.validation()
    evaluator = (
        EpochEvaluator(recipe, seed, data_dir, max_test_examples)
        if evaluate_every_epoch and distribute.is_chief(strategy)
        else None
    )
    callbacks = [
        # Each k-winners layer decays by its own boost_strength_factor (the network's
        # config: 0.85 MNIST, 0.9 GSC): one home for the factor.
        BoostDecay(),
        keras.callbacks.LearningRateScheduler(recipe.learning_rate_for),
        DutyCycleMonitor(),
        *tensorboard_callbacks(run.path / "tensorboard", recipe.name, seed),
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
            callbacks=callbacks,
            shuffle=False,  # the epoch's order is already fixed by (seed, epoch)
            verbose=verbose,
        )
        state["train_seconds"] += time.perf_counter() - start
        logs = {key: float(values[-1]) for key, values in history.history.items()}
        # Tested after BoostDecay's end-of-epoch step, as the released runner tests
        # after `postEpoch` has decayed the boost strength.
        if validation is not None:
            logs["val_accuracy"] = _validation_accuracy(model, validation)
            if (
                state["best_val_accuracy"] is None
                or logs["val_accuracy"] > state["best_val_accuracy"]
            ):
                state["best_val_accuracy"], state["best_epoch"] = logs["val_accuracy"], epoch
                model.save_weights(run.best_weights)
        if evaluator is not None:
            tick = time.perf_counter()
            logs.update(evaluator(model))
            state["test_seconds"] = state.get("test_seconds", 0.0) + time.perf_counter() - tick
            print(
                f"[{recipe.name} seed {seed}] epoch {epoch}: test accuracy "
                f"{logs['test_accuracy']:.4f}, noise score {logs['noise_score']}",
                flush=True,
            )
        state["history"].append({"epoch": epoch, **logs})
        state["epochs_done"] = epoch + 1
        run.save(model, state)
    if evaluator is not None:
        state["test_size"] = len(evaluator.test_set.labels)
        state["fast_path_check"] = evaluator.check_fast_path(model)
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
    tmp = path.with_name(f".{path.name}.tmp.weights.h5")
    clean.save_weights(tmp)
    tmp.replace(path)


PAPER_SELECTION = (
    "epoch with the best test-set accuracy (test-set selection, as the released code's "
    "projects/test_score_table.py bestScore)"
)


def protocol_epochs(recipe: Recipe, history: list[dict]) -> dict[str, int]:
    """The epoch each reporting protocol takes (SPEC §3).

    - "paper": the first epoch with the best clean test accuracy (`np.argmax`, as the
      released `bestScore`). This selects on the test set.
    - "held_out": MNIST the last epoch; audio the first epoch with the best validation
      accuracy.
    """
    test = [h["test_accuracy"] for h in history]
    if recipe.select == "best_val":
        held_out = int(np.argmax([h["val_accuracy"] for h in history]))
    else:
        held_out = len(history) - 1
    return {"paper": int(np.argmax(test)), "held_out": held_out}


def record_result(
    recipe: Recipe,
    seed: int,
    state: dict,
    results_dir: pathlib.Path = RESULTS_DIR,
    command: str | None = None,
) -> dict:
    """Writes the seed's result JSON from the per-epoch tests in `state["history"]`.

    Top-level `clean_accuracy`, `noise_score` and `noise` are the held-out protocol's
    (the published checkpoint's); `protocols` holds both protocols' epochs and numbers.
    """
    from sparse_keras.robustness import DEFAULT_NOISE_LEVELS, NoiseReport

    history = state["history"]
    if len(history) != state["epochs_done"] or any("noise_correct" not in h for h in history):
        raise ValueError(
            f"{recipe.name} seed {seed}: the run has no per-epoch test results for every epoch; "
            "it cannot be recorded (train it with per-epoch evaluation)."
        )
    protocols = {}
    for protocol, epoch in protocol_epochs(recipe, history).items():
        entry = history[epoch]
        report = NoiseReport(
            model_name=recipe.name,
            dataset=recipe.dataset,
            noise_levels=DEFAULT_NOISE_LEVELS,
            correct=tuple(entry["noise_correct"]),
            test_size=state["test_size"],
            seed=seed,
        )
        protocols[protocol] = {
            "epoch": epoch,
            "selection": PAPER_SELECTION
            if protocol == "paper"
            else (
                "epoch with the best validation accuracy"
                if recipe.select == "best_val"
                else "last epoch (no test-set peeking)"
            ),
            "clean_accuracy": entry["test_accuracy"],
            "noise_score": entry["noise_score"],
            "noise": report.to_dict(),
        }
    held_out = protocols["held_out"]
    result = {
        "recipe": recipe.name,
        "network": recipe.network,
        "dataset": recipe.dataset,
        "seed": seed,
        "clean_accuracy": held_out["clean_accuracy"],
        "noise": held_out["noise"],
        "noise_score": held_out["noise_score"],
        "epochs": state["epochs_done"],
        "selected_epoch": held_out["epoch"],
        "selection": held_out["selection"],
        "protocols": protocols,
        "fast_path_check": state.get("fast_path_check"),
        "train_seconds": round(state["train_seconds"], 1),
        "test_seconds": round(state.get("test_seconds", 0.0), 1),
        "history": history,
        "recipe_config": {k: v for k, v in recipe.__dict__.items()},
        "versions": package_versions(),
        "git_commit": git_commit(),
        "command": command or " ".join(sys.argv),
    }
    out = results_dir / recipe.name / f"seed{seed}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(
        f"[{recipe.name} seed {seed}] held-out: accuracy {result['clean_accuracy']:.4f}, noise "
        f"score {result['noise_score']}; paper protocol (test-set selection): accuracy "
        f"{protocols['paper']['clean_accuracy']:.4f}, noise score "
        f"{protocols['paper']['noise_score']} -> {out}",
        flush=True,
    )
    return result


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], prog="python -m training.train"
    )
    parser.add_argument("--recipe", required=True, help=f"one of: {', '.join(list_recipes())}")
    parser.add_argument("--seeds", type=_positive, default=1, help="number of seeds to run")
    parser.add_argument("--first-seed", type=_non_negative, default=0, help="the first seed")
    parser.add_argument(
        "--epochs",
        type=_positive,
        default=None,
        help="train fewer epochs than the recipe (smoke runs; needs --results-dir)",
    )
    parser.add_argument(
        "--max-train-examples",
        type=_positive,
        default=None,
        help="train on a subset (smoke runs; needs --results-dir)",
    )
    parser.add_argument(
        "--max-test-examples",
        type=_positive,
        default=None,
        help="test on a subset after each epoch (smoke runs; needs --results-dir)",
    )
    parser.add_argument("--data-dir", default=None, help="the dataset's own folder")
    parser.add_argument(
        "--runs-dir", type=pathlib.Path, default=RUNS_DIR, help="checkpoints and logs"
    )
    parser.add_argument(
        "--results-dir", type=pathlib.Path, default=RESULTS_DIR, help="result JSON files"
    )
    parser.add_argument("--verbose", default="auto", choices=["auto", "0", "1", "2"])
    parser.add_argument(
        "--strategy",
        choices=distribute.STRATEGIES,
        default="default",
        help="tf.distribute strategy: default (one device), mirrored (all local GPUs), "
        "multiworker (the cluster in TF_CONFIG; see docs/distributed.md)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="discard the seed's checkpoints and state and train it from scratch",
    )
    parser.add_argument(
        "--skip-evaluation",
        action="store_true",
        help="train only: no per-epoch tests and no result file (timing runs)",
    )
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="write the result files again from the finished runs' states",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.skip_evaluation and args.evaluate_only:
        parser.error("--skip-evaluation and --evaluate-only exclude each other")
    partial = args.epochs or args.max_train_examples or args.max_test_examples
    if partial and args.results_dir.resolve() == RESULTS_DIR.resolve():
        parser.error(
            "--epochs, --max-train-examples and --max-test-examples make smoke runs, whose "
            "results must not replace the committed ones: give --results-dir too"
        )
    try:
        recipe = get_recipe(args.recipe)
    except ValueError as err:
        parser.error(str(err))
    # Before any other TensorFlow work: the multi-worker runtime must start first.
    strategy = distribute.make_strategy(args.strategy)
    verbose = args.verbose if args.verbose == "auto" else int(args.verbose)
    command = "python -m training.train " + " ".join(argv if argv is not None else sys.argv[1:])
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        run = RunDir.for_seed(args.runs_dir, recipe, seed, strategy)
        if args.evaluate_only:
            state = run.state()
            if not run.final_weights.exists() or state["epochs_done"] < (
                args.epochs or recipe.epochs
            ):
                raise FileNotFoundError(
                    f"No finished run for {recipe.name} seed {seed} in {run.path}."
                )
            command = state.get("command", command)
        else:
            if args.restart and run.path.exists():
                import shutil

                shutil.rmtree(run.path)
            _, state = train_seed(
                recipe,
                seed,
                args.runs_dir,
                args.data_dir,
                args.max_train_examples,
                args.epochs,
                verbose,
                strategy,
                evaluate_every_epoch=not args.skip_evaluation,
                max_test_examples=args.max_test_examples,
            )
            state["command"] = command
            run.write_state(state)
        if distribute.is_chief(strategy) and not args.skip_evaluation:
            record_result(recipe, seed, state, args.results_dir, command)
    return 0


def cli(argv: list[str] | None = None) -> int:
    """`main` with one-line errors: exit 1 on a failure, 2 on a usage error (argparse)."""
    try:
        return main(argv)
    except (CorruptRunStateError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
