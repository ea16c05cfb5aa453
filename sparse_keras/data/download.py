"""Where datasets live, and verified downloads into that place."""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
import urllib.request

from tqdm.auto import tqdm

DATA_ENV_VAR = "SPARSE_KERAS_DATA"


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable."""


def data_root(data_dir: str | os.PathLike | None, dataset_subdir: str) -> pathlib.Path:
    """The directory a dataset is read from (and downloaded into).

    Args:
        data_dir: An explicit directory; used as is when given.
        dataset_subdir: Sub-directory of the dataset (e.g. "mnist"), appended to
            `$SPARSE_KERAS_DATA` or to the default cache.

    Returns:
        `data_dir`, else `$SPARSE_KERAS_DATA/<dataset_subdir>`, else
        `~/.keras/datasets/sparse_keras/<dataset_subdir>` (honouring `KERAS_HOME`).
    """
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    env = os.environ.get(DATA_ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser() / dataset_subdir
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return pathlib.Path(keras_home) / "datasets" / "sparse_keras" / dataset_subdir


def sha256_of(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    url: str, dest_path: str | os.PathLike, sha256: str | None, progress: bool = True
) -> pathlib.Path:
    """Downloads `url` to `dest_path`, verified, atomically.

    The file is written to a temporary name beside `dest_path`, its sha256 checked,
    and only then renamed into place, so an interrupted or corrupt download never
    leaves a file that a later run would take for valid.

    Args:
        url: Source URL (http, https or file).
        dest_path: Final location.
        sha256: Expected hex digest; `None` skips the check (only for sources that
            publish no checksum — avoid).
        progress: Show a tqdm progress bar.

    Returns:
        `dest_path` as a Path.

    Raises:
        DataNotFoundError: if the download fails (e.g. offline).
        ValueError: if the checksum does not match.
    """
    dest = pathlib.Path(dest_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = pathlib.Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)  # noqa: S310 (URLs are ours or the user's)
            except OSError as err:
                raise DataNotFoundError(f"Could not download {url} to {dest}: {err}") from err
            with response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(
                    total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress
                ) as bar:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
        if sha256 is not None:
            actual = sha256_of(tmp)
            if actual != sha256:
                raise ValueError(
                    f"Checksum mismatch for {url}: expected sha256 {sha256}, got {actual}. "
                    "The file was discarded; try again or check the source."
                )
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)
