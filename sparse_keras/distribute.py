"""Helpers for training with `tf.distribute` strategies (TensorFlow backend).

`KWinners` itself needs nothing from here: under a strategy it sums its winner
counts over all replicas on its own. These helpers make the *input* match the
single-device run: every training step consumes exactly one global batch of a
dataset, split into contiguous per-replica slices, on one machine or many.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker")


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Creates a `tf.distribute` strategy by name.

    Create it at the start of the program, before other TensorFlow work:
    `MultiWorkerMirroredStrategy` must set up its collective runtime first.

    Args:
        name: "default" (no distribution: the current default strategy),
            "mirrored" (`MirroredStrategy`, all local GPUs or the CPU) or
            "multiworker" (`MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`).

    Returns:
        The strategy. Build and compile models inside its `scope()`.

    Example:

    >>> strategy = make_strategy("default")
    >>> strategy.num_replicas_in_sync
    1
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return MultiWorkerStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")


class MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """A `MultiWorkerMirroredStrategy` whose `reduce` accepts what Keras 3 passes it.

    Keras 3.15's TensorFlow trainer calls `strategy.reduce` in two ways that
    `MirroredStrategy` tolerates but the multi-worker strategy rejects, so `fit`
    fails (keras-team/keras#20585, #20329):

    - before the first step, on the whole `(x, y)` batch, a nested structure
      (`Strategy.reduce` is documented for a single value);
    - after every step, with `axis=0` on the per-replica scalars of the logs.

    This subclass reduces nests leaf by leaf and reduces scalars over replicas
    only (reducing "along axis 0" of a scalar can mean nothing else). Any other
    call goes to the parent unchanged.

    It takes the parent's arguments, `cluster_resolver` (`None` reads the cluster
    from `TF_CONFIG`) and `communication_options`.
    """

    def reduce(self, reduce_op, value, axis=None):
        """`tf.distribute.Strategy.reduce`, applied to each leaf of a nested `value`."""
        reduce_one = super().reduce

        def reduce_leaf(leaf):
            local = self.experimental_local_results(leaf)[0]
            leaf_axis = None if getattr(local, "shape", None) == () else axis
            return reduce_one(reduce_op, leaf, leaf_axis)

        return tf.nest.map_structure(reduce_leaf, value)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the shared outputs (results, the checkpoint).

    Always true for a single-process strategy. In a multi-worker cluster: the
    "chief" task, or worker 0 when the cluster has no chief (the convention of
    `MultiWorkerMirroredStrategy`).
    """
    resolver = strategy.cluster_resolver
    if resolver is None or resolver.task_type in (None, "chief"):
        return True
    cluster = resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in cluster


def distribute_global_batches(
    strategy: tf.distribute.Strategy,
    dataset_fn: Callable[[], tf.data.Dataset],
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """Feeds each training step exactly one global batch, split over all replicas.

    `dataset_fn()` must return the same dataset of *global* batches in every
    process (same order: derive it from a seed, not from the process). Replica
    `r` of `R` in sync gets rows `[r * n // R, (r + 1) * n // R)` of each global
    batch of `n` rows, so the replicas of one step together see exactly the
    batch one device would see. Each worker keeps only its own replicas' slices;
    no data is exchanged and no auto-sharding policy is involved.

    Args:
        strategy: The strategy the model was built under.
        dataset_fn: Builds the dataset of global batches (tuples or nests of
            tensors, batch axis first).

    Returns:
        `dataset_fn()` itself with one replica, else a `DistributedDataset` to pass
        to `model.fit` / `model.evaluate`.

    Example:

    >>> strategy = make_strategy("default")
    >>> ds = distribute_global_batches(
    ...     strategy, lambda: tf.data.Dataset.range(8).batch(4))
    >>> [b.numpy().tolist() for b in ds]
    [[0, 1, 2, 3], [4, 5, 6, 7]]
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return dataset_fn()

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def local_slices(*batch):
            # Tuples arrive unpacked, other structures (a tensor, a dict) as one argument.
            element = batch[0] if len(batch) == 1 else batch
            rows = tf.shape(tf.nest.flatten(element)[0])[0]

            def replica_slice(j):
                start = (first + j) * rows // replicas
                end = (first + j + 1) * rows // replicas
                return tf.nest.map_structure(lambda t: t[start:end], element)

            # distribute_datasets_from_function hands consecutive elements to the
            # worker's replicas in order: one slice per local replica and step.
            return tf.data.Dataset.range(local, output_type=tf.int32).map(replica_slice)

        # The length stays unknown: Keras would read a known one as the number of
        # steps, though a step takes `local` elements.
        return dataset_fn().flat_map(local_slices)

    return strategy.distribute_datasets_from_function(per_worker)
