"""GSC reader, features and augmentation, on the real 300-clip v0.01 sample."""

from __future__ import annotations

import hashlib
import io
import pathlib
import tarfile
import wave

import numpy as np
import pytest
import tensorflow as tf

from sparse_keras.data import audio, gsc, pipeline, wav
from sparse_keras.data.download import DataNotFoundError, data_root

librosa = pytest.importorskip("librosa")
soundfile = pytest.importorskip("soundfile")

GSC_ROOT = data_root(None, "gsc")
SAMPLE = GSC_ROOT / "sample_v0.01"
NOISE_DIR = GSC_ROOT / "_background_noise_"
needs_sample = pytest.mark.skipif(
    not SAMPLE.is_dir(), reason=f"GSC sample tree not found at {SAMPLE} (set SPARSE_KERAS_DATA)"
)


def librosa_log_mel(waveform: np.ndarray) -> np.ndarray:
    """The paper's features computed by librosa (reflect-padded centred STFT)."""
    mel = librosa.feature.melspectrogram(
        y=waveform, sr=16000, n_fft=2048, hop_length=512, n_mels=32, center=True, pad_mode="reflect"
    )
    return librosa.power_to_db(mel, ref=np.max, amin=1e-10, top_db=80.0)


def read_padded(path: pathlib.Path) -> np.ndarray:
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == 16000
    return librosa.util.fix_length(samples, size=16000)


def write_wav(
    path: pathlib.Path, samples: np.ndarray, rate: int = 16000, channels: int = 1
) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(channels)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.asarray(samples) * 32767).astype("<i2").tobytes())
    return path


# --------------------------------------------------------------------------- splits


@needs_sample
def test_sample_splits_follow_the_official_lists():
    splits = {split: gsc.list_clips(split, SAMPLE) for split in gsc.SPLITS}
    assert {s: len(p) for s, (p, _) in splits.items()} == {
        "train": 62,
        "validation": 16,
        "test": 22,
    }
    names = {s: {f"{p.parent.name}/{p.name}" for p in paths} for s, (paths, _) in splits.items()}
    assert not names["train"] & names["validation"]
    assert not names["train"] & names["test"]
    assert not names["validation"] & names["test"]
    listed = {
        line
        for line in (SAMPLE / "testing_list.txt").read_text().split()
        if line.split("/")[0] in gsc.DIGITS
    }
    assert names["test"] == listed
    for paths, labels in splits.values():
        assert [gsc.CLASS_NAMES[label] for label in labels] == [p.parent.name for p in paths]
        assert labels.min() >= 2
    assert gsc.NUM_CLASSES == 12 and gsc.CLASS_NAMES[:3] == ("unknown", "silence", "zero")


@needs_sample
def test_silence_is_added_to_train_only():
    def labels(split, **kwargs):
        ds = gsc.load(split, 32, SAMPLE, return_waveforms=True, **kwargs)
        return np.concatenate([y.numpy() for _, y in ds])

    train = labels("train")
    assert len(train) == 62 + 6 and (train == gsc.SILENCE_LABEL).sum() == 6
    assert len(labels("validation")) == 16 and len(labels("test")) == 22
    assert (labels("test", silence_fraction=0.5) == gsc.SILENCE_LABEL).sum() == 11
    # The all-zero silence clip has all-zero features (everything equals its maximum).
    features = [
        x for x, y in gsc.load("train", None, SAMPLE, shuffle=False) if y == gsc.SILENCE_LABEL
    ]
    assert len(features) == 6 and np.all(features[0].numpy() == 0.0)


@needs_sample
def test_background_silence_comes_from_the_noise_recordings():
    ds = gsc.load(
        "train", None, SAMPLE, return_waveforms=True, silence_source="background", shuffle=False
    )
    silence = [w.numpy() for w, y in ds if y == gsc.SILENCE_LABEL]
    assert len(silence) == 6
    recordings = [read_padded_all(p) for p in sorted(NOISE_DIR.glob("*.wav"))]
    for clip in silence:
        assert np.abs(clip).max() > 0
        assert any(_contains(r, clip) for r in recordings)


def read_padded_all(path):
    return soundfile.read(path, dtype="float32")[0]


def _contains(recording: np.ndarray, clip: np.ndarray) -> bool:
    starts = np.flatnonzero(recording[: len(recording) - len(clip) + 1] == clip[0])
    return any(np.array_equal(recording[s : s + len(clip)], clip) for s in starts)


@needs_sample
def test_waveforms_and_features_match_the_files():
    paths, _ = gsc.list_clips("test", SAMPLE)
    ds = gsc.load("test", 8, SAMPLE, return_waveforms=True)
    waveforms = np.concatenate([w.numpy() for w, _ in ds])
    expected = np.stack([read_padded(p) for p in paths])
    np.testing.assert_array_equal(waveforms, expected)
    features = np.concatenate([x.numpy() for x, _ in gsc.load("test", 8, SAMPLE)])
    assert features.shape == (22, 32, 32, 1)
    np.testing.assert_allclose(features, audio.log_mel(expected).numpy(), atol=1e-4)


# --------------------------------------------------------------------------- features


def test_mel_filterbank_matches_librosa():
    np.testing.assert_allclose(
        audio.mel_filterbank(),
        librosa.filters.mel(sr=16000, n_fft=2048, n_mels=32),
        rtol=1e-5,
        atol=1e-8,
    )


@needs_sample
def test_log_mel_matches_librosa_on_real_clips():
    paths = sorted(SAMPLE.glob("*/*.wav"))[::10]  # 30 clips, one per word folder
    waveforms = np.stack([read_padded(p) for p in paths])
    ours = audio.log_mel(waveforms).numpy()
    assert ours.shape == (len(paths), 32, 32, 1)
    reference = np.stack([librosa_log_mel(w) for w in waveforms])[..., None]
    assert np.abs(ours - reference).max() <= 0.1
    assert ours.max() == 0.0 and ours.min() >= -80.0


@pytest.mark.skipif(not NOISE_DIR.is_dir(), reason="no _background_noise_ folder")
def test_log_mel_matches_librosa_on_background_noise():
    excerpts = []
    for path in sorted(NOISE_DIR.glob("*.wav")):
        samples, rate = wav.read_wav(path)
        assert rate == 16000
        excerpts += [samples[start : start + 16000] for start in (0, 123_457, len(samples) - 16000)]
    excerpts = np.stack(excerpts)
    reference = np.stack([librosa_log_mel(w) for w in excerpts])[..., None]
    assert np.abs(audio.log_mel(excerpts).numpy() - reference).max() <= 0.1


def test_log_mel_pads_crops_and_takes_single_clips():
    rng = np.random.default_rng(0)
    clip = rng.uniform(-0.5, 0.5, 12000).astype(np.float32)
    padded = np.pad(clip, (0, 4000))
    np.testing.assert_array_equal(
        audio.log_mel(clip).numpy(), audio.log_mel(padded[None])[0].numpy()
    )
    long = np.concatenate([padded, rng.uniform(-1, 1, 3000).astype(np.float32)])
    np.testing.assert_array_equal(audio.log_mel(long).numpy(), audio.log_mel(padded).numpy())


# --------------------------------------------------------------------------- augmentation


def _tone(freq: float, n: int = 16000) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(n) / 16000)).astype(np.float32)


def test_change_amplitude_scales():
    w = _tone(440)[None].repeat(2, 0)
    out = audio.change_amplitude(w, [0.7, 1.1]).numpy()
    np.testing.assert_allclose(out, w * np.array([[0.7], [1.1]], np.float32), rtol=1e-6)


@needs_sample
def test_change_speed_matches_np_interp_and_keeps_length():
    clip = read_padded(gsc.list_clips("test", SAMPLE)[0][0])
    for scale in (-0.2, 0.13, 0.2):
        out = audio.change_speed(clip[None], [scale]).numpy()[0]
        assert out.shape == (16000,)
        positions = np.arange(0, 16000, 1 / (1 + scale))[:16000]  # the paper's np.interp
        expected = np.zeros(16000, np.float32)
        expected[: len(positions)] = np.interp(positions, np.arange(16000), clip)
        np.testing.assert_allclose(out, expected, atol=2e-4)


def test_change_speed_changes_pitch():
    for scale, pitch in ((0.25, 800), (-0.2, 1250)):
        out = audio.change_speed(_tone(1000)[None], [scale]).numpy()[0]
        assert out.shape == (16000,)
        spectrum = np.abs(np.fft.rfft(out[:12000] * np.hanning(12000)))
        assert abs(np.argmax(spectrum) * 16000 / 12000 - pitch) < 3
    # 1.25× faster: the 16,000 input samples fill 12,800 output samples, then zeros.
    assert np.all(out[12800:] == 0) and np.all(out[12790:12799] != 0)


def test_stretch_equals_librosa_phase_vocoder_magnitudes():
    rng = np.random.default_rng(1)
    stft = librosa.stft(rng.uniform(-1, 1, 16000).astype(np.float32), n_fft=2048, hop_length=512)
    for rate in (0.8, 0.93, 1.2):
        vocoded = np.abs(librosa.phase_vocoder(stft, rate=rate, hop_length=512))
        expected = librosa.util.fix_length(vocoded, size=32, axis=-1).T
        ours = audio.stretch_frames(np.abs(stft).T[None], [rate]).numpy()[0]
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def test_stretch_changes_duration_as_asked():
    block = np.zeros((1, 32, 4), np.float32)
    block[0, 4:24] = 1.0  # 20 frames of sound
    for rate in (0.8, 1.0, 1.25):
        out = audio.stretch_frames(block, [rate]).numpy()[0, :, 0]
        assert out.shape == (32,)
        assert abs(out.sum() - 20 / rate) <= 1.0  # the duration scales by 1 / rate
        centre = (np.arange(32) * out).sum() / out.sum()
        assert abs(centre - 13.5 / rate) <= 0.5  # and so does the time of each frame


def test_shift_moves_energy_by_whole_frames():
    click = np.zeros((1, 16000), np.float32)
    click[0, 16 * 512] = 1.0  # centred on STFT frame 16
    base = audio.log_mel(click).numpy()[0, :, :, 0]
    assert np.argmax(base.sum(axis=0)) == 16
    for shift in (-8, -3, 5, 8):
        params = audio.identity_augmentation(1)
        params["shift"] = tf.constant([shift])
        out = audio.augmented_log_mel(click, params).numpy()[0, :, :, 0]
        assert np.argmax(out.sum(axis=0)) == 16 + shift
    magnitude = np.arange(32, dtype=np.float32)[None, :, None] + 1
    out = audio.shift_frames(magnitude, [3]).numpy()[0, :, 0]
    np.testing.assert_array_equal(out, np.concatenate([[0, 0, 0], np.arange(29) + 1]))


def test_identity_augmentation_equals_plain_features():
    rng = np.random.default_rng(2)
    w = rng.uniform(-0.3, 0.3, (3, 16000)).astype(np.float32)
    np.testing.assert_array_equal(
        audio.augmented_log_mel(w, audio.identity_augmentation(3)).numpy(), audio.log_mel(w).numpy()
    )


def test_sample_augmentation_probabilities_and_ranges():
    p = {k: v.numpy() for k, v in audio.sample_augmentation(4000, tf.constant([3, 4])).items()}
    for key, identity in (("amplitude", 1.0), ("speed", 0.0), ("stretch", 1.0), ("shift", 0)):
        assert 0.45 < np.mean(p[key] != identity) < 0.55, key
    assert p["amplitude"].min() >= 0.7 and p["amplitude"].max() <= 1.1
    assert p["speed"].min() >= -0.2 and p["speed"].max() <= 0.2
    assert p["stretch"].min() >= 0.8 and p["stretch"].max() <= 1.2
    assert set(np.unique(p["shift"])) == set(range(-8, 9))
    again = audio.sample_augmentation(4000, tf.constant([3, 4]))
    np.testing.assert_array_equal(again["speed"].numpy(), p["speed"])


@needs_sample
def test_augmented_pipeline_is_deterministic_by_seed():
    def first_batches(seed, epochs=1):
        ds = gsc.load("train", 8, SAMPLE, augment=True, seed=seed)
        return [np.concatenate([x.numpy().ravel() for x, _ in ds.take(2)]) for _ in range(epochs)]

    a1, a2 = first_batches(1, epochs=2)
    (b1,) = first_batches(1)
    (c1,) = first_batches(2)
    np.testing.assert_array_equal(a1, b1)
    assert not np.array_equal(a1, c1)
    assert not np.array_equal(a1, a2)  # a new epoch draws new augmentations
    x, y = next(iter(gsc.load("train", 8, SAMPLE, augment=True, class_balanced=True)))
    assert x.shape == (8, 32, 32, 1) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert np.all((x.numpy() <= 0) & (x.numpy() >= -80))


def test_class_balanced_sampling_balances():
    labels = np.array([2] * 1000 + [3] * 10 + [4] * 90, np.int32)
    entries = {"label": labels}
    ds = pipeline.make_dataset(
        entries,
        lambda e: tf.zeros([16000]),
        batch_size=1100,
        class_balanced=True,
        return_waveforms=True,
    )
    drawn = np.concatenate([y.numpy() for _, y in ds.repeat(3)])
    assert len(drawn) == 3300
    counts = np.bincount(drawn, minlength=5)[2:] / len(drawn)
    # Weights N / (count + 1) per example → class shares ∝ count / (count + 1).
    expected = np.array([1000 / 1001, 10 / 11, 90 / 91])
    np.testing.assert_allclose(counts, expected / expected.sum(), atol=0.04)


# --------------------------------------------------------------------------- bad input


def _tiny_tree(root: pathlib.Path) -> pathlib.Path:
    for word in gsc.DIGITS:
        write_wav(root / word / "aaaa0000_nohash_0.wav", _tone(300, 8000))
    (root / "validation_list.txt").write_text("one/aaaa0000_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("two/aaaa0000_nohash_0.wav\ndog/x_nohash_0.wav\n")
    return root


def test_tiny_tree_loads(tmp_path):
    tree = _tiny_tree(tmp_path)
    assert len(gsc.list_clips("train", tree)[0]) == 8
    x, y = next(iter(gsc.load("validation", None, tree)))
    assert x.shape == (32, 32, 1) and int(y) == gsc.CLASS_NAMES.index("one")


@pytest.mark.parametrize(
    "make_bad, message",
    [
        (
            lambda p: write_wav(p, _tone(300, 4000), rate=8000),
            "sample rate 8000 Hz; expected 16000",
        ),
        (lambda p: write_wav(p, np.zeros(8000), channels=2), "2 channels; expected 1"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(write_wav(p, _tone(300, 8000)).read_bytes()[:3000]), "truncated"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk"), "no 'data' chunk"),
    ],
)
def test_bad_wav_files_are_named(tmp_path, make_bad, message):
    tree = _tiny_tree(tmp_path)
    bad = tree / "five" / "bad_nohash_0.wav"
    make_bad(bad)
    with pytest.raises(ValueError, match=message) as info:
        gsc.load("train", 4, tree)
    assert str(bad) in str(info.value)


def test_bad_sample_rate_is_caught_in_the_graph_too(tmp_path):
    tree = _tiny_tree(tmp_path)
    bad = write_wav(tree / "five" / "bad_nohash_0.wav", _tone(300, 4000), rate=8000)
    ds = gsc.load("train", 16, tree, check_files=False, shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad_nohash_0.wav"):
        list(ds)
    assert bad.exists()


def test_list_naming_a_missing_clip(tmp_path):
    tree = _tiny_tree(tmp_path)
    (tree / "testing_list.txt").write_text("two/aaaa0000_nohash_0.wav\nsix/missing_nohash_3.wav\n")
    with pytest.raises(
        FileNotFoundError, match="testing_list.txt names 'six/missing_nohash_3.wav'"
    ):
        gsc.list_clips("test", tree)


def test_unknown_split_and_bad_arguments(tmp_path):
    tree = _tiny_tree(tmp_path)
    with pytest.raises(ValueError, match="Unknown GSC split 'training'"):
        gsc.load("training", data_dir=tree)
    with pytest.raises(ValueError, match="cannot return waveforms"):
        gsc.load("train", data_dir=tree, augment=True, return_waveforms=True)
    with pytest.raises(ValueError, match="silence_source"):
        gsc.load("train", data_dir=tree, silence_source="noise")


def test_missing_tree_points_at_the_sample(tmp_path):
    (tmp_path / "sample_v0.01").mkdir()
    with pytest.raises(DataNotFoundError, match="sample_v0.01"):
        gsc.load("test", data_dir=tmp_path, download=False)


def test_download_verifies_and_extracts(tmp_path, httpserver, monkeypatch):
    source = _tiny_tree(tmp_path / "source")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname="./" + str(path.relative_to(source)), recursive=False)
    archive = buffer.getvalue()
    httpserver.expect_request("/gsc.tar.gz").respond_with_data(archive)
    monkeypatch.setattr(gsc, "ARCHIVE_URL", httpserver.url_for("/gsc.tar.gz"))

    # Both pinned digests are checked: a wrong sha256 discards the download, then the MD5.
    monkeypatch.setattr(gsc, "ARCHIVE_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="Checksum mismatch.*expected sha256 0000"):
        gsc.download(tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
    monkeypatch.setattr(gsc, "ARCHIVE_SHA256", hashlib.sha256(archive).hexdigest())
    monkeypatch.setattr(gsc, "ARCHIVE_MD5", "0" * 32)
    with pytest.raises(ValueError, match="MD5"):
        gsc.download(tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad" / gsc.ARCHIVE_NAME).exists()

    monkeypatch.setattr(gsc, "ARCHIVE_MD5", hashlib.md5(archive).hexdigest())
    with pytest.raises(DataNotFoundError):  # a mistyped path is not downloaded into
        gsc.list_clips("validation", tmp_path / "good")
    (tmp_path / "good").mkdir()
    paths, _ = gsc.list_clips("validation", tmp_path / "good")
    assert paths == [tmp_path / "good" / gsc.TREE_DIRNAME / "one" / "aaaa0000_nohash_0.wav"]
    assert not (tmp_path / "good" / gsc.ARCHIVE_NAME).exists()
