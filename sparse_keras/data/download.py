"""Where datasets live, and verified downloads into that place."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable

from tqdm.auto import tqdm

DATA_ENV_VAR = "SPARSE_KERAS_DATA"
# "0", "false", "no" or "off" turns the sha256 check of data files already on disk off.
VERIFY_ENV_VAR = "SPARSE_KERAS_VERIFY_DATA"
_FALSE_WORDS = ("0", "false", "no", "off")


class DataNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable."""


class DataIntegrityError(ValueError):
    """Raised when a data file on disk is not the official file (its sha256 differs)."""


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


def verification_enabled(verify: bool | None = None) -> bool:
    """Whether data files on disk are checked: `verify`, else `$SPARSE_KERAS_VERIFY_DATA`.

    Args:
        verify: True or False decides; None reads the environment variable (on unless
            it is "0", "false", "no" or "off").
    """
    if verify is not None:
        if not isinstance(verify, bool):
            raise TypeError(f"verify must be True, False or None, got {verify!r}.")
        return verify
    return os.environ.get(VERIFY_ENV_VAR, "1").strip().lower() not in _FALSE_WORDS


def _marker_dir() -> pathlib.Path:
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return pathlib.Path(keras_home) / "sparse_keras" / "verified"


def _marker_path(path: pathlib.Path) -> pathlib.Path:
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32]
    return _marker_dir() / f"{key}.json"


def _fingerprint(path: pathlib.Path, sha256: str) -> dict:
    stat = path.stat()
    return {
        "path": str(path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "inode": stat.st_ino,
        "sha256": sha256,
    }


def _marker_matches(marker: pathlib.Path, expected: dict) -> bool:
    try:
        return json.loads(marker.read_text()) == expected
    except (OSError, ValueError):
        return False  # no marker yet, or an unreadable one: check the data


def _write_marker(marker: pathlib.Path, expected: dict) -> None:
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        temporary = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(expected))
        os.replace(temporary, marker)
    except OSError:
        pass  # a read-only home: verify again next time


def _opt_out() -> str:
    return f"pass verify=False or set {VERIFY_ENV_VAR}=0"


def verify_file(
    path: str | os.PathLike, sha256: str, verify: bool | None = None, what: str = "data file"
) -> pathlib.Path:
    """Checks once that a file on disk is the official one, by its sha256.

    The first check reads the whole file. When it matches, a small marker (the file's
    path, size, modification time, inode and digest) is written under
    `$KERAS_HOME/sparse_keras/verified/` (default `~/.keras`), never beside the data,
    which may be read-only or shared; later calls compare only the file's `stat`
    with the marker, so the check costs once per file version. Any change to the file
    (new size, new mtime, replaced file) checks it again. When the marker cannot be
    written the check simply runs every time.

    Args:
        path: The file.
        sha256: Its official hex sha256.
        verify: False skips the check (a file you altered on purpose); None follows
            `$SPARSE_KERAS_VERIFY_DATA` (checked unless it is "0"/"false"/"no"/"off").
        what: How to name the file in the error.

    Returns:
        `path` as a Path.

    Raises:
        DataIntegrityError: if the digest differs, naming the file, both digests and
            the way to opt out.
    """
    path = pathlib.Path(path)
    if not verification_enabled(verify):
        return path
    expected = _fingerprint(path, sha256)
    marker = _marker_path(path)
    if _marker_matches(marker, expected):
        return path
    actual = sha256_of(path)
    if actual != sha256:
        raise DataIntegrityError(
            f"{what} {path} is not the official file: its sha256 is {actual}, expected {sha256}. "
            "It may be corrupt, truncated or altered; delete it to download it again. To use "
            f"it anyway, {_opt_out()}."
        )
    _write_marker(marker, expected)
    return path


def tree_sha256(folder: str | os.PathLike, names: list[str]) -> str:
    """The sha256 of a file set: of its `sha256sum` listing, in byte order of the names.

    Equal to `cd FOLDER && printf '%s\\n' NAMES | LC_ALL=C sort | xargs sha256sum | sha256sum`,
    so a published value can be checked without this package.

    Args:
        folder: The folder the names are relative to.
        names: Relative POSIX paths of the files.
    """
    folder = pathlib.Path(folder)
    listing = "".join(f"{sha256_of(folder / name)}  {name}\n" for name in sorted(names))
    return hashlib.sha256(listing.encode()).hexdigest()


def verify_tree(
    folder: str | os.PathLike,
    names: list[str],
    sha256: str,
    count: int,
    verify: bool | None = None,
    what: str = "data folder",
) -> pathlib.Path:
    """Checks once that a folder holds exactly the official files, by `tree_sha256`.

    Like `verify_file`, for a dataset of many files: the first check reads them all
    (well under a second for the audio sets); a marker keyed on the folder then holds
    every file's name, size, modification time and inode, so later calls only `stat`
    the files, and any change checks the whole set again.

    Args:
        folder: The folder.
        names: The data files found in it, as relative POSIX paths.
        sha256: The official `tree_sha256` of the set.
        count: The official number of files (a missing or extra file is named as such).
        verify: False skips the check; None follows `$SPARSE_KERAS_VERIFY_DATA`.
        what: How to name the folder in the error.

    Returns:
        `folder` as a Path.

    Raises:
        DataIntegrityError: if the number of files or the digest differs, naming the
            folder, both values and the way to opt out.
    """
    folder = pathlib.Path(folder)
    if not verification_enabled(verify):
        return folder
    if len(names) != count:
        raise DataIntegrityError(
            f"{what} {folder} holds {len(names)} data files; the official set has {count}. "
            "It may be incomplete or mixed with other files; download it again, or, to use "
            f"it anyway, {_opt_out()}."
        )
    stats = []
    for name in sorted(names):
        stat = (folder / name).stat()
        stats.append(f"{name} {stat.st_size} {stat.st_mtime_ns} {stat.st_ino}")
    expected = {
        "path": str(folder.resolve()),
        "files": hashlib.sha256("\n".join(stats).encode()).hexdigest(),
        "sha256": sha256,
    }
    marker = _marker_path(folder)
    if _marker_matches(marker, expected):
        return folder
    actual = tree_sha256(folder, names)
    if actual != sha256:
        raise DataIntegrityError(
            f"{what} {folder} does not hold the official files: their tree sha256 is {actual}, "
            f"expected {sha256} (sparse_keras.data.download.tree_sha256). A file may be "
            f"corrupt, truncated or altered; download it again, or, to use it anyway, "
            f"{_opt_out()}."
        )
    _write_marker(marker, expected)
    return folder


def _missing_folders(folder: pathlib.Path) -> list[pathlib.Path]:
    """`folder` and those of its ancestors that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_created_folders(folders: list[pathlib.Path]) -> None:
    """Removes folders a failed operation created (deepest first), if still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break  # not empty (or gone): leave it and its parents


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

    A failed download leaves nothing behind: no partial file, and none of the folders
    it had to create for `dest_path`.
    """
    dest = pathlib.Path(dest_path)
    created = _missing_folders(dest.parent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        return _fetch_into(url, dest, sha256, progress)
    except BaseException:
        remove_created_folders(created)
        raise


def _fetch_into(url: str, dest: pathlib.Path, sha256: str | None, progress: bool) -> pathlib.Path:
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
                raise DataIntegrityError(
                    f"Checksum mismatch for {url}: expected sha256 {sha256}, got {actual}. "
                    "The file was discarded; try again or check the source."
                )
        os.replace(tmp, dest)
        return dest
    finally:
        tmp.unlink(missing_ok=True)


def extract_tar(
    archive: str | os.PathLike,
    target: str | os.PathLike,
    members: Callable[[tarfile.TarFile], list[tarfile.TarInfo]] | None = None,
    prepare: Callable[[pathlib.Path], None] | None = None,
    replace: bool = False,
) -> pathlib.Path:
    """Extracts a `.tar.gz` into `target` so that an interrupted extraction never looks done.

    The files go to a hidden sibling folder first (`.<target>.partial`, removed on any
    failure); `prepare` may check or complete that folder (verify it, write split lists),
    and only then is it renamed to `target`.

    Args:
        archive: The archive.
        target: The folder to create.
        members: Picks (and may rename) the members to extract; default all of them.
            Extraction uses tarfile's "data" filter (no absolute paths, links out, devices).
        prepare: Called with the partial folder before it is renamed; raising aborts.
        replace: Remove an existing `target` first (otherwise the rename fails if it
            exists and is not empty).

    Returns:
        `target` as a Path.
    """
    target = pathlib.Path(target)
    partial = target.parent / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            chosen = None if members is None else members(tar)
            tar.extractall(partial, members=chosen, filter="data")
        if prepare is not None:
            prepare(partial)
        if replace:
            shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
