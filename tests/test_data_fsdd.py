"""FSDD loader: splits, GSC-compatible labels, 8 → 16 kHz resampling and features."""

from __future__ import annotations

import io
import pathlib
import tarfile
import wave

import numpy as np
import pytest
import tensorflow as tf

from sparse_keras.data import audio, download, fsdd, gsc
from sparse_keras.data.download import data_root

librosa = pytest.importorskip("librosa")
soundfile = pytest.importorskip("soundfile")
scipy_signal = pytest.importorskip("scipy.signal")

RECORDINGS = data_root(None, "fsdd") / "recordings"
needs_fsdd = pytest.mark.skipif(
    not RECORDINGS.is_dir(),
    reason=f"FSDD recordings not found at {RECORDINGS} (set SPARSE_KERAS_DATA)",
)
SOME_CLIPS = (
    "0_george_0.wav",
    "3_theo_17.wav",
    "7_jackson_32.wav",
    "9_yweweler_49.wav",
    "5_lucas_3.wav",
)


def write_wav(path: pathlib.Path, samples: np.ndarray, rate: int = 8000) -> pathlib.Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.asarray(samples) * 32767).astype("<i2").tobytes())
    return path


@needs_fsdd
def test_standard_split_with_validation_holdout():
    splits = {split: fsdd.list_clips(split) for split in fsdd.SPLITS}
    assert {s: len(p) for s, (p, _) in splits.items()} == {
        "train": 2400,
        "validation": 300,
        "test": 300,
    }
    index = {s: {int(p.stem.split("_")[2]) for p in paths} for s, (paths, _) in splits.items()}
    assert index == {
        "train": set(range(10, 50)),
        "validation": set(range(5, 10)),
        "test": set(range(5)),
    }
    for _, labels in splits.values():
        assert set(np.bincount(labels)[2:]) == {len(labels) // 10}  # balanced digits

    train, _ = fsdd.list_clips("train", validation_holdout=False)
    assert len(train) == 2700
    with pytest.raises(ValueError, match="no 'validation' split"):
        fsdd.list_clips("validation", validation_holdout=False)


@needs_fsdd
def test_speaker_held_out_split():
    test, _ = fsdd.list_clips("test", test_speaker="theo")
    train, _ = fsdd.list_clips("train", test_speaker="theo")
    validation, _ = fsdd.list_clips("validation", test_speaker="theo")
    assert len(test) == 500 and {p.stem.split("_")[1] for p in test} == {"theo"}
    assert len(train) == 2250 and len(validation) == 250
    assert "theo" not in {p.stem.split("_")[1] for p in train + validation}
    with pytest.raises(ValueError, match="Unknown FSDD speaker 'bob'"):
        fsdd.list_clips("test", test_speaker="bob")
    with pytest.raises(ValueError, match="Unknown FSDD split 'valid'"):
        fsdd.list_clips("valid")


@needs_fsdd
def test_labels_are_the_gsc_digit_ids():
    paths, labels = fsdd.list_clips("train")
    label = dict(zip([p.name for p in paths], labels, strict=True))["7_jackson_32.wav"]
    assert fsdd.CLASS_NAMES[label] == "seven" and label == gsc.CLASS_NAMES.index("seven") == 9
    assert fsdd.CLASS_NAMES == gsc.CLASS_NAMES and fsdd.NUM_CLASSES == 12
    assert [fsdd.label_of(d) for d in range(10)] == list(range(2, 12))


@needs_fsdd
def test_resampling_matches_scipy_resample_poly():
    for name in SOME_CLIPS:
        samples, rate = soundfile.read(RECORDINGS / name, dtype="float32")
        assert rate == 8000
        ours = audio.resample_poly(samples, 2, 1).numpy()
        np.testing.assert_allclose(ours, scipy_signal.resample_poly(samples, 2, 1), atol=1e-5)


@needs_fsdd
def test_pipeline_features_match_librosa_on_resampled_clips():
    paths = [RECORDINGS / name for name in SOME_CLIPS]
    ours = [fsdd.load_waveform(tf.constant(str(p))).numpy() for p in paths]
    for path, waveform in zip(paths, ours, strict=True):
        samples, _ = soundfile.read(path, dtype="float32")
        upsampled = scipy_signal.resample_poly(samples, 2, 1).astype(np.float32)
        # Centred in the 1-s window (cropped centrally when longer).
        if len(upsampled) >= 16000:
            start = (len(upsampled) - 16000) // 2
            expected = upsampled[start : start + 16000]
        else:
            before = (16000 - len(upsampled)) // 2
            expected = np.pad(upsampled, (before, 16000 - len(upsampled) - before))
        np.testing.assert_allclose(waveform, expected, atol=1e-5)
        reference = librosa.power_to_db(
            librosa.feature.melspectrogram(
                y=waveform, sr=16000, n_fft=2048, hop_length=512, n_mels=32, pad_mode="reflect"
            ),
            ref=np.max,
        )
        assert np.abs(audio.log_mel(waveform).numpy()[..., 0] - reference).max() <= 0.1


@needs_fsdd
def test_load_yields_features_waveforms_and_aligns():
    x, y = next(iter(fsdd.load("test", 16)))
    assert x.shape == (16, 32, 32, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert np.all((x.numpy() <= 0) & (x.numpy() >= -80))
    w, _ = next(iter(fsdd.load("test", 4, return_waveforms=True, shuffle=False)))
    assert w.shape == (4, 16000)
    nonzero = np.flatnonzero(w.numpy()[0])
    # "0_george_0.wav" is 0.41 s: centred, it has silence at both ends; at the start, not.
    assert nonzero[0] > 4000 and nonzero[-1] < 12000
    start = fsdd.load_waveform(tf.constant(str(RECORDINGS / "0_george_0.wav")), align="start")
    assert np.flatnonzero(start.numpy())[0] < 10
    augmented, _ = next(iter(fsdd.load("train", 8, augment=True, class_balanced=True, seed=3)))
    assert augmented.shape == (8, 32, 32, 1)


def test_bad_files_are_named(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    write_wav(folder / "1_alice_0.wav", np.zeros(4000))
    bad = write_wav(folder / "2_alice_17.wav", np.zeros(4000), rate=16000)
    # Two made-up clips are not the official recordings: verify=False reads them as they are.
    with pytest.raises(ValueError, match="sample rate 16000 Hz; expected 8000") as info:
        fsdd.list_clips("train", tmp_path, verify=False)
    assert str(bad) in str(info.value)
    bad.unlink()
    (folder / "notes.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="Unexpected FSDD file name"):
        fsdd.list_clips("train", tmp_path, verify=False)


def test_download_extracts_recordings(tmp_path, httpserver, monkeypatch):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("1_alice_0.wav", "2_alice_5.wav"):
            data = io.BytesIO()
            write_wav(tmp_path / name, np.zeros(800))
            data.write((tmp_path / name).read_bytes())
            info = tarfile.TarInfo(f"free-spoken-digit-dataset-x/recordings/{name}")
            info.size = data.tell()
            data.seek(0)
            tar.addfile(info, data)
        readme = tarfile.TarInfo("free-spoken-digit-dataset-x/README.md")
        tar.addfile(readme, io.BytesIO(b""))
    httpserver.expect_request("/fsdd.tar.gz").respond_with_data(buffer.getvalue())
    monkeypatch.setattr(fsdd, "ARCHIVE_URL", httpserver.url_for("/fsdd.tar.gz"))
    # The recordings are pinned by their tree digest (the archive's bytes are not stable).
    names = ["1_alice_0.wav", "2_alice_5.wav"]
    monkeypatch.setattr(fsdd, "NUM_RECORDINGS", 2)
    monkeypatch.setattr(fsdd, "RECORDINGS_SHA256", download.tree_sha256(tmp_path, names))
    paths, labels = fsdd.list_clips("test", tmp_path / "data")
    assert [p.name for p in paths] == ["1_alice_0.wav"] and list(labels) == [3]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["recordings"]

    monkeypatch.setattr(fsdd, "RECORDINGS_SHA256", "0" * 64)
    with pytest.raises(download.DataIntegrityError, match="expected 0000"):
        fsdd.download(tmp_path / "tampered", progress=False)
    assert not (tmp_path / "tampered" / "recordings").exists()
    monkeypatch.setattr(fsdd, "NUM_RECORDINGS", 3000)
    with pytest.raises(ValueError, match="holds 2 data files; the official set has 3000"):
        fsdd.download(tmp_path / "other", progress=False)
    assert not (tmp_path / "other" / "recordings").exists()
