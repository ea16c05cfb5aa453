"""Speech Commands v0.02, 12-class task: the speaker re-split, both silence conventions,
the pipeline, the noise test and the download code (real v0.02 test-set recordings)."""

from __future__ import annotations

import collections
import io
import pathlib
import tarfile
import wave

import numpy as np
import pytest

from sparse_keras.data import gsc12v2
from sparse_keras.data.download import DataNotFoundError, sha256_of


@pytest.fixture(scope="module")
def tree(data_dir) -> pathlib.Path:
    path = data_dir / "gsc_test_v0.02"
    if not (path / "testing_list.txt").exists():
        pytest.skip(f"gsc_test_v0.02 not found at {path}")
    return path


def _shipped(tree, name):
    return sorted(line for line in (tree / name).read_text().splitlines() if line.strip())


def test_split_rule_reproduces_the_shipped_lists(tree):
    testing, validation = gsc12v2.split_lists(tree)
    assert testing == _shipped(tree, "testing_list.txt")
    assert validation == _shipped(tree, "validation_list.txt")


def test_splits_are_speaker_disjoint_with_the_readme_counts(tree):
    # The data README's table: 3,585 / 375 / 930 clips, silence 286 / 40 / 82.
    speakers = {}
    for split, total, silence in (("train", 3585, 286), ("validation", 375, 40), ("test", 930, 82)):
        paths, labels = gsc12v2.list_clips(split, tree, silence="recorded", check_files=False)
        assert len(paths) == total
        assert collections.Counter(labels.tolist())[gsc12v2.SILENCE_LABEL] == silence
        zeros_paths, zeros_labels = gsc12v2.list_clips(split, tree, check_files=False)
        # The paper's convention drops the recorded silence clips.
        assert len(zeros_paths) == total - silence
        assert gsc12v2.SILENCE_LABEL not in zeros_labels
        speakers[split] = {
            gsc12v2.speaker_of(f"{p.parent.name}/{p.name}")
            for p, label in zip(paths, labels, strict=True)
            if label != gsc12v2.SILENCE_LABEL
        }
    assert not speakers["train"] & speakers["validation"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    assert len(speakers["test"]) == 48 and len(speakers["validation"]) == 24


def test_labels_follow_the_folders(tree):
    paths, labels = gsc12v2.list_clips("test", tree, silence="recorded", check_files=False)
    for path, label in zip(paths, labels, strict=True):
        folder = path.parent.name
        expected = {"_unknown_": 0, "_silence_": 1}.get(folder, gsc12v2.KEYWORD_LABELS.get(folder))
        assert label == expected, path
    assert gsc12v2.CLASS_NAMES[:2] == ("unknown", "silence") and gsc12v2.NUM_CLASSES == 12


def test_paper_convention_adds_zero_silence_to_training_only(tree):
    train = gsc12v2.load("train", batch_size=None, data_dir=tree, return_waveforms=True)
    labels, silent = [], 0
    for waveform, label in train.as_numpy_iterator():
        labels.append(int(label))
        if label == gsc12v2.SILENCE_LABEL:
            assert not waveform.any()  # all-zero clips
            silent += 1
    assert silent == int(0.1 * 3299) and len(labels) == 3299 + 329
    test = gsc12v2.load("test", batch_size=256, data_dir=tree)
    test_labels = np.concatenate([y for _, y in test.as_numpy_iterator()])
    assert len(test_labels) == 848 and gsc12v2.SILENCE_LABEL not in test_labels


def test_features_have_the_paper_shape(tree):
    features, labels = next(iter(gsc12v2.load("validation", batch_size=8, data_dir=tree)))
    assert features.shape == (8, 32, 32, 1) and labels.shape == (8,)
    assert float(features.numpy().max()) == 0.0 and float(features.numpy().min()) >= -80.0


def test_noise_test_uses_keyword_and_unknown_clips(tree, monkeypatch):
    from sparse_keras import models, robustness

    monkeypatch.setenv("SPARSE_KERAS_DATA", str(tree.parent))
    model = models.build("gsc_sparse_cnn2", seed=0)
    report = robustness.evaluate(model, "gsc12v2", noise_levels=(0.5,), progress=False)
    assert report.test_size == 848 and report.max_score == 848


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"split": "dev"},
            r"Unknown split 'dev'; expected one of \('train', 'validation', 'test'\)",
        ),
        (
            {"split": "train", "silence": "noise"},
            r"silence must be one of \('zeros', 'recorded'\), got 'noise'",
        ),
        (
            {"split": "train", "silence": "recorded", "silence_fraction": 0.1},
            r"silence_fraction=0.1 adds all-zero clips",
        ),
        ({"split": "train", "silence_fraction": -1.0}, "silence_fraction must be >= 0, got -1.0"),
    ],
)
def test_bad_arguments_are_named(tree, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gsc12v2.load(data_dir=tree, check_files=False, **kwargs)


def test_missing_tree_is_not_created_or_downloaded(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError, match="No Speech Commands v0.02 tree in"):
        gsc12v2.list_clips("test", missing)
    assert not missing.exists()


def _wav_bytes(seconds=0.25):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.zeros(int(16000 * seconds), "<i2").tobytes())
    return out.getvalue()


def _tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_download_verifies_extracts_and_writes_the_split(tmp_path, monkeypatch):
    # A miniature test-set archive served from a file: URL exercises the real download path.
    wav = _wav_bytes()
    files = {f"{w}/{s}_nohash_0.wav": wav for w in gsc12v2.KEYWORDS for s in ("aa11", "bb22")}
    files |= {f"_unknown_/bed_{s}_nohash_0.wav": wav for s in ("cc33", "dd44", "ee55")}
    files |= {f"_silence_/{i}.wav": wav for i in range(10)}
    archive = tmp_path / "test_set.tar.gz"
    archive.write_bytes(_tar_of(files))
    monkeypatch.setattr(gsc12v2, "TEST_SET_URL", archive.as_uri())
    monkeypatch.setattr(gsc12v2, "TEST_SET_SHA256", "0" * 64)
    target = tmp_path / "data" / "gsc_test_v0.02"
    with pytest.raises(ValueError, match="Checksum mismatch"):
        gsc12v2.download(target, progress=False)
    assert not target.exists()
    monkeypatch.setattr(gsc12v2, "TEST_SET_SHA256", sha256_of(archive))
    assert gsc12v2.download(target, progress=False) == target
    testing, validation = gsc12v2.split_lists(target)
    assert _shipped(target, "testing_list.txt") == testing
    # 5 speakers: round(1.0) = 1 test speaker, round(1.5) - 1 = 1 validation speaker;
    # 10 silence clips: 2 test, 1 validation.
    assert sum(p.startswith("_silence_") for p in testing) == 2
    assert sum(p.startswith("_silence_") for p in validation) == 1
    # A miniature tree is not the official 4,890 clips: refused unless the user opts out.
    with pytest.raises(ValueError, match="holds 33 data files; the official set has 4890"):
        gsc12v2.list_clips("train", target, silence="recorded")
    paths, _ = gsc12v2.list_clips("train", target, silence="recorded", verify=False)
    assert len(paths) + len(testing) + len(validation) == len(files)


def test_full_v002_tree_maps_other_words_to_unknown(tmp_path):
    # The full archive's layout: a folder per word and the official lists.
    wav = _wav_bytes()
    root = tmp_path / "speech_commands_v0.02"
    for word in (*gsc12v2.KEYWORDS, "bed", "_background_noise_"):
        (root / word).mkdir(parents=True)
        (root / word / "aa11_nohash_0.wav").write_bytes(wav)
    (root / "testing_list.txt").write_text("yes/aa11_nohash_0.wav\nbed/aa11_nohash_0.wav\n")
    (root / "validation_list.txt").write_text("no/aa11_nohash_0.wav\n")
    paths, labels = gsc12v2.list_clips("test", tmp_path)
    assert [p.parent.name for p in paths] == ["bed", "yes"]
    assert labels.tolist() == [gsc12v2.UNKNOWN_LABEL, gsc12v2.KEYWORD_LABELS["yes"]]
    train, _ = gsc12v2.list_clips("train", tmp_path)
    assert len(train) == 8  # 10 keywords + bed - 3 held out; _background_noise_ is no class
    with pytest.raises(ValueError, match="silence='recorded' needs the test-set tree"):
        gsc12v2.list_clips("test", tmp_path, silence="recorded")
