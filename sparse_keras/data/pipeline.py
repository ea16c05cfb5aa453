"""From a table of audio clips to `tf.data` pipelines, and the audio datasets' descriptors.

Every audio loader (`gsc.load`, `gsc12v2.load`, `fsdd.load`) lists its split's clips and
hands them to `clip_dataset`, which adds the silence clips, reads and decodes the files in
the graph, and builds the pipeline (`make_dataset`: shuffling or the paper's
class-balanced sampling, augmentation, log-mel features, batching). `log_mel_dataset`
makes the `Dataset` descriptor the three share: 16 kHz waveforms, the paper's white-noise
protocol, log-mel features.

Example:

>>> table = {"clip": np.zeros([4, 16000], np.float32), "label": np.arange(4)}
>>> ds = make_dataset(table, lambda entry: entry["clip"], batch_size=2)
>>> [features.shape for features, _ in ds]
[TensorShape([2, 32, 32, 1]), TensorShape([2, 32, 32, 1])]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from sparse_keras import noise
from sparse_keras.data import audio, wav
from sparse_keras.data.descriptor import Dataset, RawInput

# Salts that keep the stateless random streams of different purposes independent.
_SALT_CLASS, _SALT_INDEX, _SALT_AUGMENT = 11, 12, 13


def _stateless_seed(key: tf.Tensor, salt: int) -> tf.Tensor:
    return tf.stack([tf.cast(key, tf.int64), tf.constant(salt, tf.int64)])


def make_dataset(
    entries: dict[str, np.ndarray],
    load_waveform: Callable[[dict[str, tf.Tensor]], tf.Tensor],
    *,
    batch_size: int | None = None,
    augment: bool = False,
    seed: int = 0,
    shuffle: bool = False,
    class_balanced: bool = False,
    return_waveforms: bool = False,
    cache: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Turns a table of clips into the `(features, label)` pipeline (GSC and FSDD).

    Args:
        entries: Equal-length NumPy arrays describing each example; must include an
            int "label". The other keys are whatever `load_waveform` needs.
        load_waveform: Graph function from a dict of scalar tensors (one row of
            `entries`) to the float32 `[16000]` waveform.
        batch_size: Batch size, or None for single examples.
        augment: Apply the random augmentation (`sample_augmentation`).
        seed: Seed of every random choice (shuffle, balancing, augmentation). The
            same seed gives the same sequence of epochs.
        shuffle: Reshuffle every epoch (ignored when `class_balanced`).
        class_balanced: Draw each example with probability proportional to
            `1 / (count of its class + 1)`, with replacement, `len(entries)` draws per
            epoch: the paper's `WeightedRandomSampler` with
            `make_weights_for_balanced_classes`.
        return_waveforms: Yield the padded waveform `[16000]` instead of features.
        cache: Keep un-augmented outputs in memory after the first epoch (not with
            `augment` or `class_balanced`, whose outputs change every epoch).
        drop_remainder: Drop a last, smaller batch.

    Returns:
        A `tf.data.Dataset` of `(features [32, 32, 1], label)` (or `(waveform [16000],
        label)`), batched when `batch_size` is given.
    """
    if augment and return_waveforms:
        raise ValueError(
            "augment=True stretches and shifts the STFT, so it cannot return waveforms; "
            "use return_waveforms=True with augment=False."
        )
    labels = np.asarray(entries["label"], dtype=np.int32)
    n = len(labels)
    if n == 0:
        raise ValueError("No examples to load (the split is empty).")
    entries = {**entries, "label": labels}
    features_now = not augment and not return_waveforms

    # The graph functions below have no Python control flow on tensors; skipping
    # autograph's source transformation saves seconds per pipeline.
    @tf.autograph.experimental.do_not_convert
    def to_example(entry):
        waveform = load_waveform(entry)
        return (audio.log_mel(waveform) if features_now else waveform), entry["label"]

    autotune = tf.data.AUTOTUNE
    if class_balanced:
        order = np.argsort(labels, kind="stable")
        _, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        # Class c is drawn with total weight count_c * N / (count_c + 1), then one of its
        # examples uniformly: exactly the per-example weights N / (count_c + 1).
        class_logits = tf.constant(np.log(counts / (counts + 1.0))[None, :], tf.float32)
        table = {k: tf.constant(np.asarray(v)[order]) for k, v in entries.items()}
        starts_t, counts_t = tf.constant(starts, tf.int64), tf.constant(counts, tf.int64)

        @tf.autograph.experimental.do_not_convert
        def draw(key):
            c = tf.random.stateless_categorical(class_logits, 1, _stateless_seed(key, _SALT_CLASS))[
                0, 0
            ]
            u = tf.random.stateless_uniform([], _stateless_seed(key, _SALT_INDEX))
            offset = tf.minimum(
                tf.cast(u * tf.cast(counts_t[c], tf.float32), tf.int64), counts_t[c] - 1
            )
            return {k: v[starts_t[c] + offset] for k, v in table.items()}

        ds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(n)
        ds = ds.map(draw, num_parallel_calls=autotune).map(to_example, num_parallel_calls=autotune)
    else:
        ds = tf.data.Dataset.from_tensor_slices(entries)
        if cache and not augment:
            ds = ds.map(to_example, num_parallel_calls=autotune).cache()
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        else:
            # Shuffle the small table rows, not decoded audio: a full-size buffer is cheap.
            if shuffle:
                ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
            ds = ds.map(to_example, num_parallel_calls=autotune)

    if augment:
        # One key per batch; the parameters of its examples are drawn from it at once,
        # so the whole chain runs vectorised over the batch.
        keys = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)

        @tf.autograph.experimental.do_not_convert
        def augment_batch(batch, key):
            waveforms, batch_labels = batch
            params = audio.sample_augmentation(
                tf.shape(waveforms)[0], _stateless_seed(key, _SALT_AUGMENT)
            )
            return audio.augmented_log_mel(waveforms, params), batch_labels

        ds = ds.batch(batch_size or 1, drop_remainder=drop_remainder if batch_size else False)
        ds = tf.data.Dataset.zip((ds, keys)).map(augment_batch, num_parallel_calls=autotune)
        if batch_size is None:
            ds = ds.unbatch()
    elif batch_size is not None:
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.prefetch(autotune)


# --------------------------------------------------------------------------- clip tables

# Silence clips added to the training split, as a fraction of its clips (the paper's code).
TRAIN_SILENCE_FRACTION = 0.1


def silence_count(split: str, clips: int, silence_fraction: float | None) -> int:
    """How many silence clips a split gets: `int(clips * silence_fraction)`.

    Args:
        split: The split's name.
        clips: Its number of recorded clips.
        silence_fraction: Silence clips as a fraction of `clips`; None for the paper's
            default, `TRAIN_SILENCE_FRACTION` for "train" and 0 for the other splits.

    Raises:
        ValueError: if `silence_fraction` is negative (or NaN).
    """
    if silence_fraction is None:
        silence_fraction = TRAIN_SILENCE_FRACTION if split == "train" else 0.0
    if not silence_fraction >= 0.0:
        raise ValueError(f"silence_fraction must be >= 0, got {silence_fraction!r}.")
    return int(clips * silence_fraction)


def read_clip(path: tf.Tensor) -> tf.Tensor:
    """Reads a 16 kHz clip as the 1-s waveform the features expect: float32 `[16000]`.

    Args:
        path: Scalar string tensor, a mono 16-bit WAV file at 16 kHz.
    """
    return audio.fix_length(wav.decode_wav(path, audio.SAMPLE_RATE))


# The loaders' (`gsc.load`, `gsc12v2.load`, `fsdd.load`) arguments that `clip_dataset`
# takes as they are.
LOADER_OPTIONS = (
    "shuffle",
    "batch_size",
    "augment",
    "seed",
    "class_balanced",
    "return_waveforms",
    "cache",
    "drop_remainder",
)


def loader_options(arguments: dict[str, Any]) -> dict[str, Any]:
    """The `LOADER_OPTIONS` among a loader's arguments (pass the loader's `locals()`)."""
    return {name: arguments[name] for name in LOADER_OPTIONS}


def clip_dataset(
    split: str,
    paths: Sequence[str | os.PathLike],
    labels: np.ndarray,
    read_waveform: Callable[[tf.Tensor], tf.Tensor],
    *,
    silence: int = 0,
    silence_label: int = 1,
    silence_clips: np.ndarray | None = None,
    shuffle: bool | None = None,
    **options,
) -> tf.data.Dataset:
    """The pipeline of a split's recorded clips followed by `silence` silence clips.

    Args:
        split: The split's name; only "train" is shuffled by default.
        paths: The clip files.
        labels: Their int label ids.
        read_waveform: Graph function from a scalar string tensor (a path) to the clip's
            float32 `[16000]` waveform.
        silence: Silence clips to add after the recorded ones.
        silence_label: Their label id.
        silence_clips: Their float32 `[silence, 16000]` waveforms; default all zeros.
        shuffle: Reshuffle every epoch; default True for "train" only.
        **options: `make_dataset`'s keyword arguments (`batch_size`, `augment`, `seed`,
            `class_balanced`, `return_waveforms`, `cache`, `drop_remainder`).

    Returns:
        The `tf.data.Dataset` `make_dataset` builds.
    """
    # A silence row has no file; its "silence" entry indexes its waveform (-1: a recorded clip).
    entries = {
        "path": np.array([str(p) for p in paths] + [""] * silence, dtype=object),
        "label": np.concatenate(
            [np.asarray(labels, np.int32), np.full(silence, silence_label, np.int32)]
        ),
        "silence": np.concatenate([np.full(len(paths), -1), np.arange(silence)]).astype(np.int64),
    }
    clips = None if silence_clips is None else tf.constant(silence_clips, tf.float32)

    def load_waveform(entry):
        if not silence:
            return read_waveform(entry["path"])

        def silent():
            if clips is None:
                return tf.zeros([audio.CLIP_SAMPLES], tf.float32)
            return tf.gather(clips, entry["silence"])

        waveform = tf.cond(entry["silence"] < 0, lambda: read_waveform(entry["path"]), silent)
        return tf.ensure_shape(waveform, [audio.CLIP_SAMPLES])

    shuffle = split == "train" if shuffle is None else shuffle
    return make_dataset(entries, load_waveform, shuffle=shuffle, **options)


# --------------------------------------------------------------------------- descriptors

# The features, in the words of a zoo model's config.json.
_LOG_MEL_WORDS = (
    "centred STFT (n_fft 2048, hop 512) -> 32 frames; 32 mel bands of the power spectrum; dB "
    "relative to the clip maximum, floored at -80 dB (values in [-80, 0])"
)
# The paper's speech noise, in the words of a model card.
_WAVEFORM_NOISE_WORDS = (
    "for each noise level η in 0.00, 0.05, ..., 0.50 the padded waveform A becomes "
    "(1 − η)·A + η·w with white noise w ~ U(−1, 1) per sample, before the features; the noise "
    "score is the number of correct predictions over all levels and the "
)


def log_mel_dataset(
    name: str,
    title: str,
    class_names: tuple[str, ...],
    load: Callable[..., tf.data.Dataset],
    *,
    test_size: int | None,
    test_clips: str,
    align: str = "start",
    recorded_rate: int | None = None,
    clip_words: str = (
        "1 s of 16 kHz mono audio as float in [-1, 1], padded or cropped to 16,000 samples; "
    ),
    preprocessing_function: str = "sparse_keras.data.audio.log_mel",
    label_words: str = "",
    noise_words: str = "",
    hub_id: str = "google/speech_commands",
    note: str | None = None,
) -> Dataset:
    """The `Dataset` descriptor of an audio dataset with the paper's log-mel features.

    Raw input: float32 waveforms `[samples]` at 16 kHz, any length, padded or cropped to
    1 s (`align`). Noise: `sparse_keras.noise.blend_white_noise` on the 1-s clip.
    Features: `audio.log_mel`, `[32, 32, 1]`.

    Args:
        name: Registry name.
        title: Its name in prose.
        class_names: The class names, in output order.
        load: The dataset module's `load`.
        test_size: Clips in the noise test set (None if it depends on the copy).
        test_clips: What those clips are, ending the card's noise sentence.
        align: "start" or "center": where a clip sits in the 1-s window.
        recorded_rate: The recordings' own rate if not 16 kHz.
        clip_words: The preprocessing description's start, up to the features.
        preprocessing_function: The function `config.json` names for the preprocessing.
        label_words: Appended to the preprocessing description.
        noise_words: Put before the card's noise sentence.
        hub_id: Hub dataset id for model cards.
        note: A paragraph for model cards.
    """
    preprocessing = {
        "description": f"{clip_words}{_LOG_MEL_WORDS}.{label_words}",
        **({"source_sample_rate": recorded_rate} if recorded_rate else {}),
        "sample_rate": audio.SAMPLE_RATE,
        "clip_samples": audio.CLIP_SAMPLES,
        "n_fft": audio.N_FFT,
        "hop_length": audio.HOP_LENGTH,
        "mel_bands": audio.N_MELS,
        "top_db": audio.TOP_DB,
        "function": preprocessing_function,
    }

    def prepare(waveforms):
        waveforms = tf.convert_to_tensor(waveforms, tf.float32)
        return audio.fix_length(waveforms, audio.CLIP_SAMPLES, align=align)

    def clean_test_set(data_dir=None, max_examples=None, download=True):
        examples = load(
            "test", data_dir=data_dir, return_waveforms=True, cache=False, download=download
        )
        if max_examples is not None:
            examples = examples.take(max_examples)
        # Decoding the clips once (not once per noise level) is most of the input cost. The
        # cache goes after `take` so that a subset is cached whole (TF drops partial caches).
        return examples.cache()

    return Dataset(
        name=name,
        title=title,
        class_names=tuple(class_names),
        raw_input=RawInput(
            "waveforms", (None,), "float32", audio.SAMPLE_RATE, recorded_rate=recorded_rate
        ),
        feature_shape=audio.FEATURE_SHAPE,
        test_size=test_size,
        prepare=prepare,
        features=audio.log_mel,
        add_noise=noise.blend_white_noise,
        clean_test_set=clean_test_set,
        load=load,
        preprocessing=preprocessing,
        noise_protocol=f"{noise_words}{_WAVEFORM_NOISE_WORDS}{test_clips}",
        hub_id=hub_id,
        task=("audio-classification", "Audio Classification"),
        note=note,
        align=align,
    )
