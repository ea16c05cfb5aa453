"""The shared download helpers of `sparse_keras.data.download` (fetch and verify are
covered with each dataset; MNIST's in test_data_mnist.py)."""

from __future__ import annotations

import io
import tarfile

import pytest

from sparse_keras.data.download import extract_tar


def _tar_gz(path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_extract_tar_is_all_or_nothing(tmp_path):
    """The shared extraction of the audio downloads: a failed check leaves nothing behind."""
    archive = tmp_path / "a.tar.gz"
    _tar_gz(archive, {"x/one.txt": b"1", "x/two.txt": b"22"})

    def refuse(partial):
        assert (partial / "x" / "two.txt").read_bytes() == b"22"  # extracted before the check
        raise ValueError("not the official files")

    with pytest.raises(ValueError, match="not the official files"):
        extract_tar(archive, tmp_path / "tree", prepare=refuse)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz"]

    def only_two(tar):
        return [m for m in tar.getmembers() if m.name.endswith("two.txt")]

    tree = extract_tar(archive, tmp_path / "tree", members=only_two)
    assert [p.relative_to(tree).as_posix() for p in tree.rglob("*.txt")] == ["x/two.txt"]
    # An existing folder is replaced only when asked.
    with pytest.raises(OSError):
        extract_tar(archive, tree)
    assert extract_tar(archive, tree, replace=True) == tree
    assert sorted(p.name for p in (tree / "x").iterdir()) == ["one.txt", "two.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar.gz", "tree"]


def test_extract_tar_refuses_paths_outside_the_target(tmp_path):

    archive = tmp_path / "evil.tar.gz"
    _tar_gz(archive, {"../escaped.txt": b"x"})
    with pytest.raises(tarfile.FilterError):
        extract_tar(archive, tmp_path / "data" / "tree")
    assert not (tmp_path / "data" / "escaped.txt").exists()
    assert not (tmp_path / "data" / "tree").exists()
