"""Google Speech Commands v0.01 (digits) as `tf.data` pipelines, as the paper used it.

Classes. The paper's code (numenta/htmpapers, `speech_commands_dataset.py`) builds
12 outputs: `["unknown", "silence", "zero", ..., "nine"]`. With only the ten digit
folders in its data directory, "unknown" never occurs; it is kept so that label ids
and the output layer match the paper's networks (and our FSDD loader, whose digits
use the same ids). So `NUM_CLASSES` is 12, `CLASS_NAMES[label]` names a label, and
label 0 ("unknown") is simply never produced here.

Splits. The official lists decide: "validation" and "test" are the digit clips named
in `validation_list.txt` / `testing_list.txt`; "train" is every digit clip on disk in
neither list (v0.01: 18,620 / 2,494 / 2,552 clips).

Silence. As in the paper's code, all-zero 1-s clips labelled "silence" are added to
the training split only, `int(0.1 · number of training clips)` of them; validation
and test get none (the test set is exactly the 2,552 digit clips; the noise score's
maximum, 11 × 2,552, counts no silence). `silence_fraction` overrides this per call,
and `silence_source="background"` cuts the silence clips from `_background_noise_`
instead (random 1-s excerpts, seeded, each within one recording).

Data directory. `data_dir` may point at any v0.01 tree (word folders plus both list
files), e.g. `shared/data/gsc/sample_v0.01`. Without it the tree is looked for in
`$SPARSE_KERAS_DATA/gsc` (or `~/.keras/datasets/sparse_keras/gsc`) and its
`speech_commands_v0.01/` sub-folder, where `download()` extracts the official archive.

Features and augmentation: see `sparse_keras.data.audio`.

Example (needs the full v0.01 recordings, about 1.5 GB: see `download`):

>>> from sparse_keras.data import gsc
>>> train = gsc.load("train", batch_size=16, augment=True, class_balanced=True)  # doctest: +SKIP
>>> test = gsc.load("test", batch_size=256)  # doctest: +SKIP
>>> clean_waveforms = gsc.load("test", batch_size=256, return_waveforms=True)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np
import tensorflow as tf

from sparse_keras.data import audio, pipeline, wav
from sparse_keras.data.download import DataNotFoundError, data_root, extract_tar, fetch

CLASS_NAMES = (
    "unknown",
    "silence",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
NUM_CLASSES = len(CLASS_NAMES)
SILENCE_LABEL = 1
DIGITS = CLASS_NAMES[2:]
DIGIT_LABELS = {word: CLASS_NAMES.index(word) for word in DIGITS}
SPLITS = ("train", "validation", "test")
SAMPLE_RATE = audio.SAMPLE_RATE
CLIP_SAMPLES = audio.CLIP_SAMPLES
FEATURE_SHAPE = audio.FEATURE_SHAPE

VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
BACKGROUND_NOISE_DIR = "_background_noise_"

ARCHIVE_URL = "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz"
ARCHIVE_NAME = "speech_commands_v0.01.tar.gz"
TREE_DIRNAME = "speech_commands_v0.01"
# Google publishes no checksums. This sha256 is the one torchaudio's SPEECHCOMMANDS
# dataset pins for this exact URL (its `_CHECKSUMS`, which also pins the v0.02 archive's
# sha256 that `gsc12v2.FULL_ARCHIVE_SHA256` holds); the MD5 is the one torchaudio pinned
# before it, checked as well.
ARCHIVE_SHA256 = "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d"
ARCHIVE_MD5 = "3cd23799cb2bbdec517f1cc028f8d43c"


# --------------------------------------------------------------------------- files


def _is_tree(path: pathlib.Path) -> bool:
    return (
        (path / VALIDATION_LIST).is_file()
        and (path / TESTING_LIST).is_file()
        and all((path / word).is_dir() for word in DIGITS)
    )


def download(
    data_dir: str | os.PathLike | None = None, progress: bool = True, keep_archive: bool = False
) -> pathlib.Path:
    """Downloads and extracts the official v0.01 archive (about 1.5 GB).

    The archive goes to `data_root(data_dir, "gsc")`, is verified (`ARCHIVE_SHA256` and
    `ARCHIVE_MD5`), and is extracted to
    `<root>/speech_commands_v0.01/` through a temporary folder, so an interrupted
    extraction never looks complete.

    Args:
        data_dir: Target directory; default as `data_root` says.
        progress: Show a progress bar.
        keep_archive: Keep the `.tar.gz` after extracting it.

    Returns:
        The extracted tree.

    Raises:
        DataNotFoundError: if the download fails.
        ValueError: if the archive fails verification (it is deleted).
    """
    root = data_root(data_dir, "gsc")
    tree = root / TREE_DIRNAME
    if _is_tree(tree):
        return tree
    archive = root / ARCHIVE_NAME
    if not archive.exists():
        fetch(ARCHIVE_URL, archive, ARCHIVE_SHA256, progress=progress)
    md5 = hashlib.md5(usedforsecurity=False)
    with open(archive, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
    if md5.hexdigest() != ARCHIVE_MD5:
        archive.unlink()
        raise ValueError(
            f"{archive} has MD5 {md5.hexdigest()}, expected {ARCHIVE_MD5} (from {ARCHIVE_URL}); "
            "the file was deleted. Try again."
        )
    extract_tar(archive, tree)
    if not keep_archive:
        archive.unlink()
    return tree


def find_tree(
    data_dir: str | os.PathLike | None = None, download_if_missing: bool = True
) -> pathlib.Path:
    """Locates a GSC v0.01 tree (digit folders and both split lists).

    Args:
        data_dir: A tree, or a directory holding `speech_commands_v0.01/`; default
            `data_root(None, "gsc")`.
        download_if_missing: Download the official archive when no tree is found
            (only when `data_dir` is None or names an existing directory without a
            tree, which then receives the download).

    Returns:
        The tree's root directory.

    Raises:
        DataNotFoundError: if there is no tree and none can be downloaded.
    """
    root = data_root(data_dir, "gsc")
    for candidate in (root, root / TREE_DIRNAME):
        if _is_tree(candidate):
            return candidate
    # A mistyped explicit path should fail, not start a 1.5 GB download into it.
    if download_if_missing and (data_dir is None or root.is_dir()):
        try:
            return download(root)
        except DataNotFoundError as err:
            reason = f" Downloading failed: {err}"
    else:
        reason = ""
    hint = ""
    if (root / "sample_v0.01").is_dir():
        hint = f" A 300-clip sample is at {root / 'sample_v0.01'}: pass it as data_dir to use it."
    raise DataNotFoundError(
        f"No GSC v0.01 tree in {root} or {root / TREE_DIRNAME} (expected {VALIDATION_LIST}, "
        f"{TESTING_LIST} and the folders {', '.join(DIGITS)}).{reason}{hint}"
    )


def _read_list(tree: pathlib.Path, name: str) -> list[str]:
    entries = []
    for line in (tree / name).read_text().splitlines():
        entry = line.strip().replace("\\", "/")
        if not entry:
            continue
        word = entry.split("/", 1)[0]
        if word in DIGIT_LABELS:
            if not (tree / entry).is_file():
                raise FileNotFoundError(
                    f"{tree / name} names {entry!r}, but {tree / entry} does not exist."
                )
            entries.append(entry)
    return entries


def list_clips(
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    check_files: bool = True,
) -> tuple[list[pathlib.Path], np.ndarray]:
    """The digit clips of one split (no silence), in a fixed order.

    Args:
        split: "train", "validation" or "test".
        data_dir: A v0.01 tree (see `find_tree`).
        download: Download the archive if no tree is found.
        check_files: Read every clip's WAV header and fail early, naming the file, if
            one is empty, truncated, not 16-bit PCM, not 16 kHz or not mono (costs a
            second or two for the full training split).

    Returns:
        `(paths, labels)`: sorted clip paths and int32 label ids (`CLASS_NAMES`).

    Raises:
        ValueError: for an unknown split or a bad clip.
        FileNotFoundError: if a list file names a digit clip that is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown GSC split {split!r}; expected one of {SPLITS}.")
    tree = find_tree(data_dir, download_if_missing=download)
    validation = _read_list(tree, VALIDATION_LIST)
    testing = _read_list(tree, TESTING_LIST)
    if split == "validation":
        relative = validation
    elif split == "test":
        relative = testing
    else:
        held_out = set(validation) | set(testing)
        relative = [
            f"{word}/{path.name}"
            for word in DIGITS
            for path in (tree / word).glob("*.wav")
            if f"{word}/{path.name}" not in held_out
        ]
    relative = sorted(set(relative))
    paths = [tree / entry for entry in relative]
    labels = np.array([DIGIT_LABELS[entry.split("/", 1)[0]] for entry in relative], dtype=np.int32)
    if check_files:
        for path in paths:
            wav.check_wav(path, SAMPLE_RATE)
    return paths, labels


def _background_noise(tree: pathlib.Path, noise_dir: str | os.PathLike | None) -> list[np.ndarray]:
    candidates = (
        [pathlib.Path(noise_dir)]
        if noise_dir is not None
        else [
            tree / BACKGROUND_NOISE_DIR,
            tree.parent / BACKGROUND_NOISE_DIR,
        ]
    )
    for folder in candidates:
        files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
        if files:
            recordings = []
            for path in files:
                wav.check_wav(path, SAMPLE_RATE)
                recordings.append(wav.read_wav(path)[0])
            return recordings
    raise DataNotFoundError(
        f"silence_source='background' needs the {BACKGROUND_NOISE_DIR} recordings; none in "
        + ", ".join(str(c) for c in candidates)
        + " (pass background_noise_dir)."
    )


def _excerpts(recordings: list[np.ndarray], count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    starts = np.array([max(len(r) - CLIP_SAMPLES + 1, 0) for r in recordings], dtype=np.float64)
    if starts.sum() == 0:
        raise ValueError("The background noise recordings are all shorter than 1 s.")
    which = rng.choice(len(recordings), size=count, p=starts / starts.sum())
    out = np.empty((count, CLIP_SAMPLES), np.float32)
    for i, r in enumerate(which):
        start = rng.integers(0, int(starts[r]))
        out[i] = recordings[r][start : start + CLIP_SAMPLES]
    return out


# --------------------------------------------------------------------------- pipelines


def load(
    split: str,
    batch_size: int | None = None,
    data_dir: str | os.PathLike | None = None,
    augment: bool = False,
    seed: int = 0,
    shuffle: bool | None = None,
    class_balanced: bool = False,
    return_waveforms: bool = False,
    silence_fraction: float | None = None,
    silence_source: str = "zeros",
    background_noise_dir: str | os.PathLike | None = None,
    cache: bool = True,
    download: bool = True,
    check_files: bool = True,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """GSC v0.01 digits (+ silence) as a `tf.data.Dataset`.

    Args:
        split: "train", "validation" or "test".
        batch_size: Batch size, or None for single examples.
        data_dir: A v0.01 tree (see `find_tree`).
        augment: Random augmentation (amplitude, speed/pitch, stretch, shift; each with
            probability 0.5; see `sparse_keras.data.audio`). The paper augments the
            training split only.
        seed: Seed of shuffling, balancing, augmentation and background excerpts.
        shuffle: Reshuffle each epoch; default True for "train" only.
        class_balanced: The paper's class-balanced sampling with replacement (train).
        return_waveforms: Yield padded float waveforms `[16000]` in [−1, 1] instead
            of features, e.g. to add noise before `audio.log_mel` (robustness tests).
        silence_fraction: Silence clips to add, as a fraction of the split's clip
            count; default 0.1 for "train" and 0 otherwise (the paper's code).
        silence_source: "zeros" (the paper) or "background" (1-s excerpts of
            `_background_noise_`).
        background_noise_dir: Folder of noise WAVs for `silence_source="background"`.
        cache: Keep un-augmented outputs in memory after the first pass.
        download: Download the archive if no tree is found.
        check_files: Check every WAV header up front (see `list_clips`).
        drop_remainder: Drop the last, smaller batch.

    Returns:
        Dataset of `(features, label)`: float32 `[32, 32, 1]` (mel × time, dB in
        [−80, 0]) and int32 label ids into `CLASS_NAMES`; with `return_waveforms`,
        float32 `[16000]` waveforms instead. Batched: a leading batch axis.
    """
    if silence_source not in ("zeros", "background"):
        raise ValueError(f"silence_source must be 'zeros' or 'background', got {silence_source!r}.")
    paths, labels = list_clips(split, data_dir, download=download, check_files=check_files)
    n_silence = pipeline.silence_count(split, len(paths), silence_fraction)
    excerpts = None
    if silence_source == "background" and n_silence:
        tree = paths[0].parent.parent if paths else find_tree(data_dir, download_if_missing=False)
        excerpts = _excerpts(_background_noise(tree, background_noise_dir), n_silence, seed)
    return pipeline.clip_dataset(
        split,
        paths,
        labels,
        pipeline.read_clip,
        silence=n_silence,
        silence_label=SILENCE_LABEL,
        silence_clips=excerpts,
        **pipeline.loader_options(locals()),
    )


DATASET = pipeline.log_mel_dataset(
    "gsc",
    "Google Speech Commands v0.01 (digits)",
    CLASS_NAMES,
    load,
    test_size=2_552,
    test_clips="2,552 digit test clips",
)
