"""Free Spoken Digit Dataset (FSDD) as `tf.data` pipelines with the GSC features.

FSDD is a small real spoken-digit set (6 speakers × 10 digits × 50 takes, 8 kHz,
trimmed clips of 0.14–2.28 s; CC BY-SA 4.0). It stands in for Google Speech Commands
where GSC is unavailable; accuracies on it are not comparable with the paper's.

Labels. The digits use the GSC label ids (`gsc.CLASS_NAMES`, 12 classes): "zero" is
2, ..., "nine" is 11, so an audio model trained on one dataset can be evaluated or
fine-tuned on the other unchanged. FSDD has no "unknown" or "silence" examples.

Audio. Each clip is resampled 8 → 16 kHz with a band-limited polyphase filter
(windowed sinc, Kaiser β = 5, 41 taps; the design of `scipy.signal.resample_poly`,
run in TF: `audio.resample_poly`), then padded or cropped to 16,000 samples. FSDD
clips are trimmed to the spoken word, so by default they are centred in the 1-s
window (`align="center"`), as words roughly are in GSC clips; `align="start"` pads
at the end like the paper's `FixAudioLength`. Then the GSC features
(`audio.log_mel`, `[32, 32, 1]`).

Splits (file names are `{digit}_{speaker}_{index}.wav`, index 0–49):
- the official split: take index 0–4 is "test" (300 clips), the rest training;
- `validation_holdout=True` (default) holds index 5–9 out of training as
  "validation" (300 clips; "train" is then index 10–49, 2,400 clips). With False,
  "train" is the official 2,700 clips and there is no "validation" split;
- `test_speaker="theo"` (any of `SPEAKERS`): "test" is all 500 clips of that
  speaker; among the other speakers index 0–4 is "validation" (with the hold-out)
  and the rest "train".
"""

from __future__ import annotations

import os
import pathlib
import re
import tarfile

import numpy as np
import tensorflow as tf

from sparse_keras.data import audio, gsc, pipeline, wav
from sparse_keras.data.download import (
    DataNotFoundError,
    data_root,
    extract_tar,
    fetch,
    verify_tree,
)

CLASS_NAMES = gsc.CLASS_NAMES
NUM_CLASSES = gsc.NUM_CLASSES
DIGIT_NAMES = gsc.DIGITS
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
SPLITS = ("train", "validation", "test")
SAMPLE_RATE = 8000
TEST_INDICES = range(0, 5)
VALIDATION_INDICES = range(5, 10)
FEATURE_SHAPE = audio.FEATURE_SHAPE

# The commit the environment's copy was taken from (2024-05-02, after tag v1.0.9).
ARCHIVE_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
ARCHIVE_URL = (
    f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{ARCHIVE_COMMIT}.tar.gz"
)
ARCHIVE_NAME = f"free-spoken-digit-dataset-{ARCHIVE_COMMIT}.tar.gz"
# GitHub generates source archives on demand (their bytes have changed over the years)
# and publishes no digest, so the archive itself is not pinned. The 3,000 recordings are:
# RECORDINGS_SHA256 is their `download.tree_sha256` at ARCHIVE_COMMIT, checked after every
# download and, once per file version, on the files already on disk.
NUM_RECORDINGS = 3000
RECORDINGS_SHA256 = "1801eae019c063377d98f831d3f93574f259475df7332bb0e3d1b080fb5e6959"

_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def label_of(digit: int) -> int:
    """GSC-compatible label id of a spoken digit 0–9 (2–11)."""
    return gsc.DIGIT_LABELS[DIGIT_NAMES[digit]]


def download(data_dir: str | os.PathLike | None = None, progress: bool = True) -> pathlib.Path:
    """Downloads the FSDD GitHub archive and extracts `recordings/`.

    Args:
        data_dir: Target directory; default `data_root(None, "fsdd")`.
        progress: Show a progress bar.

    Returns:
        The `recordings` folder.

    Raises:
        DataNotFoundError: if the download fails.
        DataIntegrityError: if the archive does not hold the 3,000 official recordings
            (a ValueError).
    """
    root = data_root(data_dir, "fsdd")
    target = root / "recordings"
    archive = root / ARCHIVE_NAME
    fetch(ARCHIVE_URL, archive, None, progress=progress)  # the recordings are verified below

    def recordings(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
        # `<repo>-<commit>/recordings/<name>.wav`, extracted flat.
        chosen = [
            m
            for m in tar.getmembers()
            if m.isfile() and len(parts := m.name.split("/")) == 3 and parts[1] == "recordings"
        ]
        for member in chosen:
            member.name = member.name.split("/")[-1]
        return chosen

    def verify(partial: pathlib.Path) -> None:
        names = [path.name for path in partial.glob("*.wav")]
        verify_tree(
            partial, names, RECORDINGS_SHA256, NUM_RECORDINGS, True, what=f"FSDD from {archive}"
        )

    try:
        extract_tar(archive, target, members=recordings, prepare=verify, replace=True)
    finally:
        archive.unlink(missing_ok=True)
    return target


def find_recordings(
    data_dir: str | os.PathLike | None = None, download_if_missing: bool = True
) -> pathlib.Path:
    """Locates the folder of FSDD WAV files.

    Args:
        data_dir: The `recordings` folder itself or its parent; default
            `data_root(None, "fsdd")`.
        download_if_missing: Download the archive when no recordings are found.

    Returns:
        The folder holding the `{digit}_{speaker}_{index}.wav` files.

    Raises:
        DataNotFoundError: if there are none and none can be downloaded.
    """
    root = data_root(data_dir, "fsdd")
    for candidate in (root / "recordings", root):
        if candidate.is_dir() and any(candidate.glob("*_*_*.wav")):
            return candidate
    if download_if_missing:
        try:
            return download(root)
        except DataNotFoundError as err:
            raise DataNotFoundError(
                f"No FSDD recordings in {root} and downloading failed: {err}"
            ) from err
    raise DataNotFoundError(
        f"No FSDD recordings in {root} or {root / 'recordings'} (expected files named "
        "{digit}_{speaker}_{index}.wav); pass data_dir or download=True."
    )


def list_clips(
    split: str,
    data_dir: str | os.PathLike | None = None,
    test_speaker: str | None = None,
    validation_holdout: bool = True,
    download: bool = True,
    check_files: bool = True,
    verify: bool | None = None,
) -> tuple[list[pathlib.Path], np.ndarray]:
    """The clips of one split, sorted, with GSC-compatible labels.

    Args:
        split: "train", "validation" or "test".
        data_dir: See `find_recordings`.
        test_speaker: Hold this speaker out as the test set (see the module notes).
        validation_holdout: Hold take index 5–9 (0–4 with `test_speaker`) out of
            training as "validation".
        download: Download the archive if no recordings are found.
        check_files: Check every WAV header (8 kHz, mono, 16-bit, complete) up front.
        verify: Check that the folder holds exactly the official 3,000 recordings
            (`RECORDINGS_SHA256`; once per file version, see
            `sparse_keras.data.download.verify_tree`). False skips it (your own or altered
            recordings); None follows `$SPARSE_KERAS_VERIFY_DATA`.

    Returns:
        `(paths, labels)`: clip paths and int32 label ids into `CLASS_NAMES`.

    Raises:
        ValueError: for an unknown split or speaker, an unexpected file name, or a
            bad WAV file (naming it).
        DataIntegrityError: if the recordings are not the official ones (a ValueError).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown FSDD split {split!r}; expected one of {SPLITS}.")
    if split == "validation" and not validation_holdout:
        raise ValueError("FSDD has no 'validation' split with validation_holdout=False.")
    folder = find_recordings(data_dir, download_if_missing=download)
    rows = []
    for path in sorted(folder.glob("*.wav")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(
                f"Unexpected FSDD file name {path} (expected {{digit}}_{{speaker}}_{{index}}.wav)."
            )
        rows.append((path, int(match.group(1)), match.group(2), int(match.group(3))))
    verify_tree(
        folder,
        [path.name for path, *_ in rows],
        RECORDINGS_SHA256,
        NUM_RECORDINGS,
        verify,
        what="FSDD recordings folder",
    )
    speakers = sorted({speaker for _, _, speaker, _ in rows})
    if test_speaker is not None and test_speaker not in speakers:
        raise ValueError(f"Unknown FSDD speaker {test_speaker!r}; the recordings have {speakers}.")

    def split_of(speaker: str, index: int) -> str:
        if test_speaker is not None:
            if speaker == test_speaker:
                return "test"
            held_out = TEST_INDICES  # the other speakers' first takes validate
        else:
            if index in TEST_INDICES:
                return "test"
            held_out = VALIDATION_INDICES
        return "validation" if validation_holdout and index in held_out else "train"

    chosen = [
        (path, digit) for path, digit, speaker, index in rows if split_of(speaker, index) == split
    ]
    paths = [path for path, _ in chosen]
    labels = np.array([label_of(digit) for _, digit in chosen], dtype=np.int32)
    if check_files:
        for path in paths:
            wav.check_wav(path, SAMPLE_RATE)
    return paths, labels


def load_waveform(path: tf.Tensor, align: str = "center") -> tf.Tensor:
    """Reads one FSDD clip as the 16 kHz, 1-s waveform the features expect.

    Args:
        path: Scalar string tensor, an 8 kHz mono 16-bit WAV file.
        align: "center" or "start" (see `audio.fix_length`).

    Returns:
        float32 `[16000]`.
    """
    upsampled = audio.resample_poly(
        wav.decode_wav(path, SAMPLE_RATE), audio.SAMPLE_RATE // SAMPLE_RATE, 1
    )
    return audio.fix_length(upsampled, audio.CLIP_SAMPLES, align=align)


def load(
    split: str,
    batch_size: int | None = None,
    data_dir: str | os.PathLike | None = None,
    test_speaker: str | None = None,
    validation_holdout: bool = True,
    augment: bool = False,
    seed: int = 0,
    shuffle: bool | None = None,
    class_balanced: bool = False,
    return_waveforms: bool = False,
    align: str = "center",
    cache: bool = True,
    download: bool = True,
    check_files: bool = True,
    verify: bool | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """FSDD as a `tf.data.Dataset` of GSC-style features and GSC label ids.

    Args:
        split: "train", "validation" or "test".
        batch_size: Batch size, or None for single examples.
        data_dir: See `find_recordings`.
        test_speaker: Speaker held out as the test set (speaker-independent split).
        validation_holdout: See `list_clips`.
        augment: The GSC training augmentation (see `sparse_keras.data.audio`).
        seed: Seed of shuffling, balancing and augmentation.
        shuffle: Reshuffle each epoch; default True for "train" only.
        class_balanced: Class-balanced sampling with replacement.
        return_waveforms: Yield 16 kHz waveforms `[16000]` instead of features.
        align: Where a short clip sits in the 1-s window: "center" or "start".
        cache: Keep un-augmented outputs in memory after the first pass.
        download: Download the archive if no recordings are found.
        check_files: Check every WAV header up front.
        verify: Check the data against its official digest (see `list_clips`).
        drop_remainder: Drop the last, smaller batch.

    Returns:
        Dataset of `(features [32, 32, 1], label)` (or `(waveform [16000], label)`),
        batched when `batch_size` is given; labels are int32 ids into `CLASS_NAMES`.
    """
    if align not in ("start", "center"):
        raise ValueError(f"align must be 'start' or 'center', got {align!r}.")
    paths, labels = list_clips(
        split,
        data_dir,
        test_speaker=test_speaker,
        validation_holdout=validation_holdout,
        download=download,
        check_files=check_files,
        verify=verify,
    )
    return pipeline.clip_dataset(
        split,
        paths,
        labels,
        lambda path: load_waveform(path, align),
        **pipeline.loader_options(locals()),
    )


DATASET = pipeline.log_mel_dataset(
    "fsdd",
    "Free Spoken Digit Dataset (FSDD)",
    CLASS_NAMES,
    load,
    # The official split's test set: take index 0-4 of every digit and speaker.
    test_size=300,
    test_clips="test clips",
    align="center",  # `load`'s default: FSDD's clips are trimmed to the word
    recorded_rate=SAMPLE_RATE,
    clip_words=(
        "Free Spoken Digit Dataset clip (8 kHz mono) resampled to 16 kHz, centred in a 1 s "
        "window of 16,000 samples; then the GSC features: "
    ),
    preprocessing_function="sparse_keras.data.fsdd.load",
    label_words=" Labels use the GSC ids (digits 2-11).",
    noise_words="the paper's GSC protocol on FSDD: ",
    # No canonical Hub id: the model-index names the data, and the card says what it is.
    hub_id="fsdd",
    note=(
        "FSDD (6 speakers, 3,000 clips, 8 kHz) stands in for Google Speech Commands, which was "
        "not available where this model was trained. Its numbers are **not comparable** with "
        "the paper's GSC results, which are therefore not shown."
    ),
)
