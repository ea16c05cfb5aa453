"""Speech Commands v0.02, the 12-class keyword task, as `tf.data` pipelines.

Classes: `CLASS_NAMES = ("unknown", "silence", "yes", "no", "up", "down", "left", "right",
"on", "off", "stop", "go")`: label ids 0 and 1 as in `sparse_keras.data.gsc`, the ten
keywords after them, so the paper's 12-output GSC networks fit unchanged.

Data. The default tree is the official v0.02 **test-set** archive (4,890 real clips in
12 folders: the ten keywords, `_unknown_` with clips of the 25 other words, `_silence_`
with 1-s background-noise excerpts), re-split by speaker into train / validation / test
(`split_lists`: 3,585 / 375 / 930 clips). Its lists are `testing_list.txt` and
`validation_list.txt` in the tree; `download()` fetches the archive (112 MB, sha256
verified) and writes them. The tree is looked for in `data_dir`, else
`$SPARSE_KERAS_DATA/gsc_test_v0.02`, else `~/.keras/datasets/sparse_keras/gsc_test_v0.02`.
The full v0.02 archive (`download_full_archive`, 2.4 GB) also loads: its official lists
split it, the ten keyword folders are the keywords and every other word folder is
"unknown".

Silence (`silence=`), the one point where the two usual conventions differ:

- `"zeros"` (default; the paper's code, SPEC §4): all-zero clips labelled "silence",
  `int(0.1 * clips)` of them, in the training split only. Validation and test hold the
  keyword and unknown clips only, and so does the noise test.
- `"recorded"` (the standard 12-class task): the tree's `_silence_` clips (real
  background noise) are the silence class in every split. Only the test-set tree has
  them.

Features and augmentation: `sparse_keras.data.audio` (the paper's log-mel features).

Example:

>>> from sparse_keras.data import gsc12v2
>>> test = gsc12v2.load("test", batch_size=256)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np
import tensorflow as tf

from sparse_keras.data import audio, pipeline, wav
from sparse_keras.data.download import (
    DataNotFoundError,
    data_root,
    extract_tar,
    fetch,
    verify_tree,
)

CLASS_NAMES = (
    "unknown",
    "silence",
    "yes",
    "no",
    "up",
    "down",
    "left",
    "right",
    "on",
    "off",
    "stop",
    "go",
)
NUM_CLASSES = len(CLASS_NAMES)
UNKNOWN_LABEL = 0
SILENCE_LABEL = 1
KEYWORDS = CLASS_NAMES[2:]
KEYWORD_LABELS = {word: CLASS_NAMES.index(word) for word in KEYWORDS}
SPLITS = ("train", "validation", "test")
SILENCE_CONVENTIONS = ("zeros", "recorded")
SAMPLE_RATE = audio.SAMPLE_RATE

DATASET_SUBDIR = "gsc_test_v0.02"
UNKNOWN_DIR = "_unknown_"
SILENCE_DIR = "_silence_"
BACKGROUND_NOISE_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
# Speaker-disjoint re-split of the test-set archive (see `split_lists`).
TEST_FRACTION, VALIDATION_FRACTION = 0.2, 0.1

# The official archives. Google publishes no checksums; these sha256 values are the ones
# other open-source loaders pin for the same URLs (the test-set archive's also matches its
# published size, 112,563,277 bytes).
TEST_SET_URL = "http://download.tensorflow.org/data/speech_commands_test_set_v0.02.tar.gz"
TEST_SET_SHA256 = "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df"
FULL_ARCHIVE_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
FULL_ARCHIVE_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
FULL_TREE_DIRNAME = "speech_commands_v0.02"
# The test-set tree's 4,890 clips: their `download.tree_sha256` (paths `<folder>/<name>.wav`),
# checked once per file version on the tree found on disk (a full v0.02 tree came from its
# sha256-verified archive and has no pinned tree digest).
TEST_SET_CLIPS = 4890
TEST_SET_TREE_SHA256 = "dfc7c39a7091b2a91532abbe2f5fcddfb1edb15989c128a92d43c5886f6a7d39"


# --------------------------------------------------------------------------- trees


def _is_test_set_tree(path: pathlib.Path) -> bool:
    return all((path / word).is_dir() for word in (*KEYWORDS, UNKNOWN_DIR, SILENCE_DIR))


def _is_full_tree(path: pathlib.Path) -> bool:
    return (
        (path / VALIDATION_LIST).is_file()
        and (path / TESTING_LIST).is_file()
        and all((path / word).is_dir() for word in KEYWORDS)
        and not (path / UNKNOWN_DIR).is_dir()
    )


def speaker_of(relative_path: str) -> str:
    """The speaker id of a clip path relative to the tree (`_silence_` clips have none).

    `yes/0a7c2a8d_nohash_0.wav` -> `0a7c2a8d`; `_unknown_/bed_0a7c2a8d_nohash_1.wav`
    -> `0a7c2a8d` (the unknown folder prefixes the file name with its word).
    """
    folder, name = relative_path.replace("\\", "/").split("/", 1)
    if "_nohash_" not in name:
        raise ValueError(f"Clip {relative_path!r} has no '<speaker>_nohash_' part in its name.")
    prefix = name.split("_nohash_", 1)[0]
    return prefix.rsplit("_", 1)[-1] if folder == UNKNOWN_DIR else prefix


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _cut(items: list[str]) -> tuple[list[str], list[str]]:
    """The first `round(0.2 n)` items (test) and the next up to `round(0.3 n)` (validation)."""
    n_test = round(TEST_FRACTION * len(items))
    n_held = round((TEST_FRACTION + VALIDATION_FRACTION) * len(items))
    return items[:n_test], items[n_test:n_held]


def split_lists(tree: str | os.PathLike) -> tuple[list[str], list[str]]:
    """The speaker-disjoint re-split of a test-set tree: `(testing, validation)` paths.

    Speakers are ordered by the sha256 hex digest of their id; the first 20% (rounded)
    are test, up to 30% (rounded) validation, the rest training. `_silence_` clips, which
    have no speaker, are ordered by the sha256 of their relative path and cut the same
    way. This is the rule that made the lists of `shared/data/gsc_test_v0.02`.

    Args:
        tree: A test-set tree (the 12 folders).

    Returns:
        Sorted relative paths (`word/file.wav`) of the test and validation clips.
    """
    tree = pathlib.Path(tree)
    clips = sorted(
        f"{folder}/{path.name}"
        for folder in (*KEYWORDS, UNKNOWN_DIR)
        for path in (tree / folder).glob("*.wav")
    )
    speakers = sorted({speaker_of(clip) for clip in clips}, key=_digest)
    test_speakers, validation_speakers = (set(part) for part in _cut(speakers))
    silence = sorted(
        (f"{SILENCE_DIR}/{path.name}" for path in (tree / SILENCE_DIR).glob("*.wav")), key=_digest
    )
    test_silence, validation_silence = _cut(silence)
    testing = [c for c in clips if speaker_of(c) in test_speakers] + test_silence
    validation = [c for c in clips if speaker_of(c) in validation_speakers] + validation_silence
    return sorted(testing), sorted(validation)


def _write_split_lists(tree: pathlib.Path) -> None:
    """A test-set tree's re-split lists (a full v0.02 tree brings its official ones)."""
    if _is_test_set_tree(tree):
        testing, validation = split_lists(tree)
        (tree / TESTING_LIST).write_text("\n".join(testing) + "\n")
        (tree / VALIDATION_LIST).write_text("\n".join(validation) + "\n")


def download(data_dir: str | os.PathLike | None = None, progress: bool = True) -> pathlib.Path:
    """Downloads the official v0.02 test-set archive (112 MB) and writes the re-split lists.

    The archive is sha256-verified (`TEST_SET_SHA256`), extracted through a temporary
    folder (an interrupted extraction never looks complete) and deleted.

    Args:
        data_dir: Target folder; default `data_root(None, "gsc_test_v0.02")`.
        progress: Show a progress bar.

    Returns:
        The tree.

    Raises:
        DataNotFoundError: if the download fails (e.g. offline).
        ValueError: if the archive's checksum differs.
    """
    root = data_root(data_dir, DATASET_SUBDIR)
    if _is_test_set_tree(root):
        return root
    archive = root.parent / "speech_commands_test_set_v0.02.tar.gz"
    fetch(TEST_SET_URL, archive, TEST_SET_SHA256, progress=progress)
    extract_tar(archive, root, prepare=_write_split_lists)
    archive.unlink()
    return root


def download_full_archive(
    data_dir: str | os.PathLike | None = None, progress: bool = True
) -> pathlib.Path:
    """Downloads the full v0.02 archive (2.4 GB, sha256-verified) with its official lists.

    Returns:
        The tree, `<data_root>/speech_commands_v0.02/`.
    """
    root = data_root(data_dir, DATASET_SUBDIR)
    tree = root / FULL_TREE_DIRNAME
    if _is_full_tree(tree):
        return tree
    archive = root / "speech_commands_v0.02.tar.gz"
    fetch(FULL_ARCHIVE_URL, archive, FULL_ARCHIVE_SHA256, progress=progress)
    extract_tar(archive, tree, prepare=_write_split_lists)
    archive.unlink()
    return tree


def find_tree(
    data_dir: str | os.PathLike | None = None, download_if_missing: bool = True
) -> pathlib.Path:
    """Locates a v0.02 tree: the re-split test-set tree, or a full v0.02 tree.

    Args:
        data_dir: A tree, or a folder holding `speech_commands_v0.02/`.
        download_if_missing: Download the test-set archive when no tree is found and
            `data_dir` is None.

    Raises:
        DataNotFoundError: naming the folders looked in.
    """
    root = data_root(data_dir, DATASET_SUBDIR)
    for candidate in (root, root / FULL_TREE_DIRNAME):
        if _is_test_set_tree(candidate) or _is_full_tree(candidate):
            return candidate
    reason = ""
    # A mistyped explicit path must fail, not start a download into it.
    if download_if_missing and data_dir is None:
        try:
            return download(None)
        except DataNotFoundError as err:
            reason = f" Downloading failed: {err}"
    raise DataNotFoundError(
        f"No Speech Commands v0.02 tree in {root} (expected the folders "
        f"{', '.join(KEYWORDS)}, {UNKNOWN_DIR} and {SILENCE_DIR}) or in "
        f"{root / FULL_TREE_DIRNAME}.{reason}"
    )


def _read_list(tree: pathlib.Path, name: str) -> set[str]:
    path = tree / name
    if not path.is_file():
        raise DataNotFoundError(
            f"{path} is missing: the tree has no split lists (gsc12v2.split_lists(tree) makes "
            "them for a test-set tree)."
        )
    return {
        line.strip().replace("\\", "/") for line in path.read_text().splitlines() if line.strip()
    }


def _label_of(relative_path: str, test_set_tree: bool) -> int | None:
    folder = relative_path.split("/", 1)[0]
    if folder in KEYWORD_LABELS:
        return KEYWORD_LABELS[folder]
    if folder == SILENCE_DIR:
        return SILENCE_LABEL
    if folder == BACKGROUND_NOISE_DIR or (test_set_tree and folder != UNKNOWN_DIR):
        return None
    return UNKNOWN_LABEL


def list_clips(
    split: str,
    data_dir: str | os.PathLike | None = None,
    silence: str = "zeros",
    download: bool = True,
    check_files: bool = True,
    verify: bool | None = None,
) -> tuple[list[pathlib.Path], np.ndarray]:
    """The recorded clips of one split, in a fixed (sorted) order.

    Args:
        split: "train", "validation" or "test".
        data_dir: A v0.02 tree (see `find_tree`).
        silence: "zeros" (keyword and unknown clips only) or "recorded" (the `_silence_`
            clips too, labelled "silence").
        download: Download the test-set archive if no tree is found.
        check_files: Check every clip's WAV header first (fails naming a bad file).
        verify: Check that a test-set tree holds exactly the official 4,890 clips
            (`TEST_SET_TREE_SHA256`; once per file version, see
            `sparse_keras.data.download.verify_tree`). False skips it; None follows
            `$SPARSE_KERAS_VERIFY_DATA`.

    Returns:
        `(paths, labels)`: clip paths and int32 label ids (`CLASS_NAMES`).

    Raises:
        ValueError: for an unknown split or convention, a bad clip, or `silence="recorded"`
            on a tree without `_silence_` clips.
        FileNotFoundError: if a list names a missing clip.
        DataIntegrityError: if a test-set tree's clips are not the official ones (a
            ValueError).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
    if silence not in SILENCE_CONVENTIONS:
        raise ValueError(f"silence must be one of {SILENCE_CONVENTIONS}, got {silence!r}.")
    tree = find_tree(data_dir, download_if_missing=download)
    test_set_tree = _is_test_set_tree(tree)
    if test_set_tree:
        clips = [
            f"{folder.name}/{path.name}"
            for folder in tree.iterdir()
            if folder.is_dir()
            for path in folder.glob("*.wav")
        ]
        verify_tree(
            tree,
            clips,
            TEST_SET_TREE_SHA256,
            TEST_SET_CLIPS,
            verify,
            what="Speech Commands v0.02 test-set tree",
        )
    if silence == "recorded" and not test_set_tree:
        raise ValueError(
            f"silence='recorded' needs the test-set tree's {SILENCE_DIR} clips; {tree} is a full "
            "v0.02 tree (use silence='zeros')."
        )
    lists = {
        "test": _read_list(tree, TESTING_LIST),
        "validation": _read_list(tree, VALIDATION_LIST),
    }
    if split == "train":
        held_out = lists["test"] | lists["validation"]
        relative = sorted(
            f"{folder.name}/{path.name}"
            for folder in tree.iterdir()
            if folder.is_dir()
            for path in folder.glob("*.wav")
            if f"{folder.name}/{path.name}" not in held_out
        )
    else:
        relative = sorted(lists[split])
    paths, labels = [], []
    for entry in relative:
        label = _label_of(entry, test_set_tree)
        if label is None or (label == SILENCE_LABEL and silence == "zeros"):
            continue
        path = tree / entry
        if not path.is_file():
            raise FileNotFoundError(f"The {split} list names {entry!r}, but {path} does not exist.")
        paths.append(path)
        labels.append(label)
    if check_files:
        for path in paths:
            wav.check_wav(path, SAMPLE_RATE)
    return paths, np.asarray(labels, np.int32)


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
    silence: str = "zeros",
    silence_fraction: float | None = None,
    cache: bool = True,
    download: bool = True,
    check_files: bool = True,
    verify: bool | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """The v0.02 12-class task as a `tf.data.Dataset`.

    Args:
        split: "train", "validation" or "test".
        batch_size: Batch size, or None for single examples.
        data_dir: A v0.02 tree (see `find_tree`).
        augment: The paper's random augmentation (see `sparse_keras.data.audio`).
        seed: Seed of shuffling, balancing and augmentation.
        shuffle: Reshuffle each epoch; default True for "train" only.
        class_balanced: The paper's class-balanced sampling with replacement.
        return_waveforms: Yield padded waveforms `[16000]` instead of features (the
            noise protocol corrupts these).
        silence: "zeros" (the paper's convention) or "recorded" (see the module doc).
        silence_fraction: With `silence="zeros"`, all-zero clips to add as a fraction of
            the split's clips; default 0.1 for "train", 0 otherwise. Must be 0 (or None)
            with "recorded".
        cache: Keep un-augmented outputs in memory after the first pass.
        download: Download the test-set archive if no tree is found.
        check_files: Check every WAV header up front.
        verify: Check the data against its official digest (see `list_clips`).
        drop_remainder: Drop the last, smaller batch.

    Returns:
        `(features [32, 32, 1], label)` (or `(waveform [16000], label)`) examples,
        batched when `batch_size` is given.
    """
    paths, labels = list_clips(
        split, data_dir, silence, download=download, check_files=check_files, verify=verify
    )
    if silence == "recorded" and silence_fraction:
        raise ValueError(
            f"silence_fraction={silence_fraction!r} adds all-zero clips, which the 'recorded' "
            "convention does not use; leave it None."
        )
    if silence == "recorded":
        silence_fraction = 0.0
    return pipeline.clip_dataset(
        split,
        paths,
        labels,
        pipeline.read_clip,
        silence=pipeline.silence_count(split, len(paths), silence_fraction),
        silence_label=SILENCE_LABEL,
        **pipeline.loader_options(locals()),
    )


DATASET = pipeline.log_mel_dataset(
    "gsc12v2",
    "Google Speech Commands v0.02 (12 classes)",
    CLASS_NAMES,
    load,
    # The noise test holds the test list's keyword and unknown clips, whose number
    # depends on the tree (the test-set archive's re-split or the full archive's list).
    test_size=None,
    test_clips="keyword and unknown test clips (no silence)",
    note=(
        "The data are real Speech Commands recordings, but not the paper's: the 4,890 clips of "
        "the official v0.02 12-class **test set** (ten keywords, unknown words, background "
        "silence), re-split here by speaker into train, validation and test "
        "(`sparse_keras.data.gsc12v2`). Recipes `gsc12v2_<network>` follow the paper's "
        "conventions (silence as all-zero clips, class balancing, augmentation, its features); "
        "`gsc12v2_recorded_silence_<network>` use recorded background noise as silence. "
        "The paper's Table 2 used v0.01 "
        "and the ten digits: its numbers are **not comparable** with these and are not shown."
    ),
)
