"""MNIST reader and pipeline on the real IDX files; downloads against a local HTTP server."""

import gzip
import hashlib
import shutil

import numpy as np
import pytest

from sparse_keras.data import download, mnist


def test_real_files_read_with_known_statistics(data_dir):
    images, labels = mnist.load_arrays("train", data_dir / "mnist", download=False)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert images.mean() / 255 == pytest.approx(0.1307, abs=1e-4)
    test_images, test_labels = mnist.load_arrays("test", data_dir / "mnist", download=False)
    assert test_images.shape == (10000, 28, 28)
    assert np.bincount(test_labels).tolist() == [
        980,
        1135,
        1032,
        1010,
        982,
        892,
        958,
        1028,
        974,
        1009,
    ]


def test_env_var_locates_the_data(data_dir, monkeypatch):
    monkeypatch.setenv("SPARSE_KERAS_DATA", str(data_dir))
    assert download.data_root(None, "mnist") == data_dir / "mnist"
    assert download.data_root("/somewhere", "mnist").as_posix() == "/somewhere"
    monkeypatch.delenv("SPARSE_KERAS_DATA")
    monkeypatch.setenv("KERAS_HOME", "/kh")
    assert download.data_root(None, "mnist").as_posix() == "/kh/datasets/sparse_keras/mnist"


def test_pipeline_normalises_and_holds_out_validation(data_dir):
    ds = mnist.load("test", batch_size=500, data_dir=data_dir / "mnist")
    x, y = next(iter(ds))
    assert x.shape == (500, 28, 28, 1) and y.dtype.name == "int32"
    raw, _ = next(
        iter(mnist.load("test", batch_size=500, data_dir=data_dir / "mnist", normalize=False))
    )
    np.testing.assert_allclose(x.numpy(), (raw.numpy() - 0.1307) / 0.3081, atol=1e-5)
    assert raw.numpy().min() >= 0 and raw.numpy().max() <= 1
    train = mnist.load_arrays("train", data_dir / "mnist", validation_size=5000)[1]
    val = mnist.load_arrays("validation", data_dir / "mnist", validation_size=5000)[1]
    assert len(train) == 55000 and len(val) == 5000


def test_shuffling_is_deterministic_by_seed(data_dir):
    def first_labels(seed):
        ds = mnist.load("test", batch_size=20, data_dir=data_dir / "mnist", shuffle=True, seed=seed)
        return next(iter(ds))[1].numpy().tolist()

    assert first_labels(1) == first_labels(1)
    assert first_labels(1) != first_labels(2)


def test_corrupt_idx_files_are_refused(tmp_path, data_dir):
    bad_magic = tmp_path / "x-idx1-ubyte"
    bad_magic.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 10)
    with pytest.raises(ValueError, match="is not an IDX file: magic bytes '12340801'"):
        mnist.read_idx(bad_magic)
    truncated = tmp_path / "t-idx3-ubyte"
    with gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
        truncated.write_bytes(f.read()[:5000])
    with pytest.raises(
        ValueError, match=r"header says shape \(10000,\) .* file has 5000 bytes: truncated"
    ):
        mnist.read_idx(truncated)
    cut_gzip = tmp_path / "c-idx1-ubyte.gz"
    cut_gzip.write_bytes((data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()[:1000])
    with pytest.raises(ValueError, match="Cannot read IDX file .*truncated or not gzip"):
        mnist.read_idx(cut_gzip)


def test_bad_split_and_missing_files_are_named(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"Unknown MNIST split 'dev'; expected one of \('train', 'validation', 'test'\)",
    ):
        mnist.load_arrays("dev", tmp_path)
    with pytest.raises(
        download.DataNotFoundError, match=r"MNIST file t10k-images-idx3-ubyte.gz not found in"
    ):
        mnist.load_arrays("test", tmp_path, download=False)


def test_download_from_a_mirror_verifies_checksums(tmp_path, data_dir, httpserver):
    for name in mnist.FILES["test"]:
        httpserver.expect_request(f"/mnist/{name}").respond_with_data(
            (data_dir / "mnist" / name).read_bytes()
        )
    cache = tmp_path / "cache"
    images, labels = mnist.load_arrays("test", cache, base_urls=(httpserver.url_for("/mnist/"),))
    assert images.shape == (10000, 28, 28) and len(labels) == 10000
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        mnist.FILES["test"]
    )  # no temp files left


def test_corrupted_download_is_rejected_and_not_cached(tmp_path, data_dir, httpserver):
    name = "t10k-labels-idx1-ubyte.gz"
    good = (data_dir / "mnist" / name).read_bytes()
    httpserver.expect_request(f"/bad/{name}").respond_with_data(good[:-10] + b"0123456789")
    httpserver.expect_request(f"/good/{name}").respond_with_data(good)
    with pytest.raises(
        ValueError, match=f"Checksum mismatch for .*{name}: expected sha256 {mnist.SHA256[name]}"
    ):
        download.fetch(
            httpserver.url_for(f"/bad/{name}"), tmp_path / name, mnist.SHA256[name], progress=False
        )
    assert list(tmp_path.iterdir()) == []
    # With a bad mirror first and a good one second, the loader falls through to the good one.
    shutil.copy(
        data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-images-idx3-ubyte.gz"
    )
    mnist.load_arrays(
        "test", tmp_path, base_urls=(httpserver.url_for("/bad/"), httpserver.url_for("/good/"))
    )
    assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == mnist.SHA256[name]


def test_offline_error_says_what_was_expected_where(tmp_path):
    with pytest.raises(
        download.DataNotFoundError,
        match=r"(?s)could not be downloaded.*Expected files: .*SPARSE_KERAS_DATA",
    ):
        mnist.load_arrays("test", tmp_path, base_urls=("http://127.0.0.1:9/",))
