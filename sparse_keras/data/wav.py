"""WAV files: header checks (standard library `wave`) and decoding, in NumPy and in TF.

The audio datasets (GSC, Speech Commands v0.02, FSDD) are folders of 16-bit PCM WAV
files. `check_wav` reads a header and checks it against the file's size and the
dataset's rate before any audio is decoded, so a truncated or foreign file fails with
an error naming it; `decode_wav` reads a clip inside a `tf.data` graph, with the same
checks as graph assertions; `read_wav` reads one with NumPy.

Example:

>>> import wave
>>> with wave.open("tone.wav", "wb") as f:
...     f.setnchannels(1); f.setsampwidth(2); f.setframerate(16000)
...     f.writeframes(np.zeros(800, "<i2").tobytes())
>>> check_wav("tone.wav", 16000).num_frames
800
"""

from __future__ import annotations

import os
import pathlib
import wave
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

# RIFF header (12 bytes) + a PCM 'fmt ' chunk (24) + a 'data' chunk header (8).
_WAV_HEADER_BYTES = 44


@dataclass(frozen=True)
class WavInfo:
    """What a WAV header declares.

    Attributes:
        sample_rate: Samples per second.
        channels: Number of interleaved channels.
        bits_per_sample: Bits per sample (16 for GSC and FSDD).
        num_frames: Samples per channel in the data chunk.
        data_offset: Byte offset of the sample data in the file.
    """

    sample_rate: int
    channels: int
    bits_per_sample: int
    num_frames: int
    data_offset: int


def read_wav_info(path: str | os.PathLike) -> WavInfo:
    """Reads and checks the header of a PCM WAV file without reading its samples.

    The header is parsed by the standard library's `wave` module (which walks the
    RIFF chunks, so files with extra chunks such as `LIST` before `data` are read),
    then checked against the file's size. The file must be 16-bit integer PCM (what
    `tf.audio.decode_wav` decodes) and its data chunk must be complete.

    Args:
        path: The WAV file.

    Returns:
        A `WavInfo`.

    Raises:
        ValueError: naming the file, if it is empty, not RIFF/WAVE, not 16-bit PCM,
            has no samples, or is shorter than its header declares (truncated).
    """
    path = pathlib.Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"WAV file {path} is empty (0 bytes).")
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path} is not a RIFF/WAVE file (first bytes {head!r}).")
        f.seek(0)
        try:
            with wave.open(f, "rb") as wav:
                channels, width = wav.getnchannels(), wav.getsampwidth()
                rate, frames = wav.getframerate(), wav.getnframes()
                # `wave` stops right after the data chunk's header: the samples start here.
                data_offset = f.tell()
        except EOFError as err:
            raise ValueError(
                f"WAV file {path} has an incomplete header: no complete 'fmt ' and 'data' "
                "chunks (truncated or not audio)."
            ) from err
        except wave.Error as err:
            if "unknown format" in str(err):
                raise ValueError(
                    f"WAV file {path} is not integer PCM ({err}); expected 16-bit integer PCM "
                    "(format 1)."
                ) from err
            if "missing" in str(err) or "not a WAVE" in str(err):
                # `wave` reads chunks only within the RIFF size the header declares.
                riff_size = int.from_bytes(head[4:8], "little")
                raise ValueError(
                    f"WAV file {path} has no 'data' chunk or no 'fmt ' chunk within its declared "
                    f"RIFF size of {riff_size} bytes (truncated or not audio)."
                ) from err
            raise ValueError(f"WAV file {path} has a bad header: {err}.") from err
    if width != 2:
        raise ValueError(
            f"WAV file {path} has {8 * width}-bit samples; expected 16-bit integer PCM (format 1)."
        )
    if channels < 1:
        raise ValueError(f"WAV file {path}: inconsistent header ({channels} channels).")
    declared = frames * channels * width
    if data_offset + declared > size:
        raise ValueError(
            f"WAV file {path} is truncated: its header declares {declared} bytes of samples "
            f"but only {size - data_offset} follow."
        )
    if frames < 1:
        raise ValueError(f"WAV file {path} contains no audio samples.")
    return WavInfo(rate, channels, 8 * width, frames, data_offset)


def check_wav(path: str | os.PathLike, sample_rate: int, channels: int = 1) -> WavInfo:
    """Checks that a WAV file is readable, complete, mono and at `sample_rate`.

    Args:
        path: The WAV file.
        sample_rate: The rate the dataset requires.
        channels: The channel count the dataset requires.

    Returns:
        The file's `WavInfo`.

    Raises:
        ValueError: naming the file and the offending value.
    """
    info = read_wav_info(path)
    if info.sample_rate != sample_rate:
        raise ValueError(
            f"WAV file {path} has sample rate {info.sample_rate} Hz; expected {sample_rate} Hz."
        )
    if info.channels != channels:
        raise ValueError(
            f"WAV file {path} has {info.channels} channels; expected {channels} (mono)."
        )
    return info


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Reads a 16-bit PCM WAV file with NumPy.

    Args:
        path: The WAV file.

    Returns:
        `(samples, sample_rate)`: float32 samples in [−1, 1) (int16 / 32768, as
        librosa and `tf.audio.decode_wav` scale them), shape `[frames]` for mono or
        `[frames, channels]`.
    """
    info = read_wav_info(path)
    with open(path, "rb") as f:
        f.seek(info.data_offset)
        raw = f.read(info.num_frames * info.channels * 2)
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    if info.channels > 1:
        samples = samples.reshape(-1, info.channels)
    return samples, info.sample_rate


def decode_wav(path: tf.Tensor, sample_rate: int) -> tf.Tensor:
    """Reads and decodes a mono 16-bit WAV file inside a TF graph.

    The sample rate and channel count are asserted in the graph, so a bad file
    fails with an error naming it even when the loader's eager header check is off.

    Args:
        path: Scalar string tensor.
        sample_rate: The rate the file must have.

    Returns:
        float32 samples in [−1, 1), shape `[frames]`.

    Raises:
        tf.errors.InvalidArgumentError: naming the file, if it is shorter than a WAV
            header (e.g. empty), does not start with a RIFF/WAVE header, holds no
            samples, or has another rate or channel count. (A file that passes these
            checks but is corrupt further in fails in `tf.audio.decode_wav`, whose
            message does not name the file: keep the loaders' `check_files=True`
            for data you do not trust.)
    """
    contents = tf.io.read_file(path)
    # Checked before decoding: tf.audio.decode_wav's own errors do not name the file.
    # The first 12 bytes, padded so that slicing a too-short file cannot fail itself.
    head = tf.strings.substr(contents, 0, 12) + "\0" * 12
    header_checks = [
        tf.debugging.Assert(
            tf.strings.length(contents) >= _WAV_HEADER_BYTES,
            [
                "WAV file",
                path,
                "has",
                tf.strings.length(contents),
                f"bytes; a WAV file has at least {_WAV_HEADER_BYTES} (empty or truncated?).",
            ],
        ),
        tf.debugging.Assert(
            tf.equal(tf.strings.substr(head, 0, 4), "RIFF")
            & tf.equal(tf.strings.substr(head, 8, 4), "WAVE"),
            ["File", path, "is not a RIFF/WAVE file (it does not start with RIFF....WAVE)."],
        ),
    ]
    with tf.control_dependencies(header_checks):
        contents = tf.identity(contents)
    audio, rate = tf.audio.decode_wav(contents, desired_channels=-1)
    channels = tf.shape(audio)[1]
    checks = [
        tf.debugging.Assert(
            tf.shape(audio)[0] > 0, ["WAV file", path, "contains no audio samples."]
        ),
        tf.debugging.Assert(
            tf.equal(rate, sample_rate),
            ["WAV file", path, "has sample rate", rate, f"Hz; expected {sample_rate} Hz."],
        ),
        tf.debugging.Assert(
            tf.equal(channels, 1),
            ["WAV file", path, "has", channels, "channels; expected 1 (mono)."],
        ),
    ]
    with tf.control_dependencies(checks):
        return tf.identity(audio[:, 0])
