"""Downloading zoo models from the Hugging Face Hub, verifying them, and loading them.

Files come through `huggingface_hub.hf_hub_download`, so the Hub cache, `HF_ENDPOINT`,
`HF_HUB_OFFLINE` and `HF_HUB_CACHE` work as in any Hub library; the last three are read
at call time (the Hub library reads them once, at import), so a process can change them.
Each file's sha256 must equal the registry's before anything is parsed; a file that
fails is removed from the cache, so it can never be served as a valid entry again.

Without the Hub, `fetch` falls back to a local copy: `$SPARSE_KERAS_ZOO_DIR/<name>/`, the
checkout's `zoo/<name>/`, or, for the README models, the copy shipped in the package
(`sparse_keras._embedded`), always after the same sha256 check. Its warning names why the
Hub could not serve the files (offline mode, Hub not reachable, repository or revision not
found) and points at the caller's line, not at this module.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pathlib
import socket
import sys
import urllib.parse
import warnings
from typing import Any

import keras

import sparse_keras
from sparse_keras import _embedded
from sparse_keras.zoo import artifacts
from sparse_keras.zoo import registry as _registry


class ChecksumError(ValueError):
    """A zoo file's sha256 differs from the one the registry pins."""


class WeightsNotAvailableError(FileNotFoundError):
    """The registry lists a zoo model whose weights were never trained or published."""


def _download_errors() -> tuple[type[BaseException], ...]:
    # OSError covers the Hub library's own errors (HfHubHTTPError, LocalEntryNotFoundError,
    # OfflineModeIsEnabled); its HTTP client's errors are not OSErrors in every version.
    errors: list[type[BaseException]] = [OSError]
    for module, name in (
        ("httpx2", "HTTPError"),
        ("httpx", "HTTPError"),
        ("requests", "RequestException"),
    ):
        with contextlib.suppress(ImportError, AttributeError):
            errors.append(getattr(importlib.import_module(module), name))
    return tuple(errors)


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _offline() -> bool:
    # Read now, not at import: the Hub library's own constant is frozen when it is imported.
    return _env_true("HF_HUB_OFFLINE")


@contextlib.contextmanager
def _hub_offline_mode(offline: bool):
    """Makes the Hub library follow `HF_HUB_OFFLINE` as it is now, for one call.

    The library reads the variable once, at import, and refuses every request while its
    copy says offline; a process that unsets the variable later would stay offline.
    """
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def _user_stacklevel() -> int:
    """`stacklevel` for a `warnings.warn` made here that names the first caller outside sparse_keras.

    Counted from the caller of this function (the function that warns), so that a
    warning points at the user's `zoo.load(...)` line however deep inside the package
    (robustness, the CLI resolver) the load was started.
    """
    package = os.path.dirname(os.path.abspath(sparse_keras.__file__)) + os.sep
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame = frame.f_back
        level += 1
    return level


def _endpoint_url(endpoint: str | None) -> str:
    from huggingface_hub import constants

    return (endpoint or constants.ENDPOINT).rstrip("/")


class _HubUnavailableError(Exception):
    """Why the Hub could not serve a model: `kind` and a sentence saying what to do."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _explain(
    err: BaseException, repo_id: str, revision: str, endpoint: str
) -> _HubUnavailableError:
    """Sorts a download error into offline / unreachable / not found / other, with advice."""
    from huggingface_hub import errors

    if isinstance(err, _HubUnavailableError):
        return err
    if isinstance(err, errors.RevisionNotFoundError):
        return _HubUnavailableError(
            "not_found",
            f"revision {revision!r} of {repo_id} does not exist on {endpoint} (check the "
            "revision, or omit it to use the one the registry pins)",
        )
    if isinstance(err, errors.RepositoryNotFoundError | errors.RemoteEntryNotFoundError):
        return _HubUnavailableError(
            "not_found",
            f"repository {repo_id} (revision {revision}) or its files were not found on "
            f"{endpoint} (the model may not be published yet; check HF_ENDPOINT, the "
            "registry's repo_id, or your Hub token for a private repository)",
        )
    status = getattr(getattr(err, "response", None), "status_code", None)
    if status is not None:
        return _HubUnavailableError(
            "http",
            f"{endpoint} answered HTTP {status} for {repo_id} at revision {revision} "
            f"({type(err).__name__}); try again later",
        )
    return _HubUnavailableError(
        "unreachable",
        f"{endpoint} could not be reached ({type(err).__name__}: {' '.join(str(err).split())}); "
        "check the network connection and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use "
        "the Hub cache without trying",
    )


_PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def _endpoint_reachable(endpoint: str | None, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens.

    Without this probe an unreachable Hub costs about 25 s of the Hub client's retries
    before the fallback. Behind a proxy a direct connection says nothing, so the Hub
    client is left to try.
    """
    if any(os.environ.get(variable) for variable in _PROXY_VARIABLES):
        return True
    from huggingface_hub import constants

    url = urllib.parse.urlsplit(endpoint or constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _not_available_message(name: str, entry: dict[str, Any], models: dict[str, Any]) -> str:
    reason = (
        entry.get("unavailable_reason") or "its weights have not been trained and published yet."
    )
    message = f"Zoo model {name!r} has no weights: {reason}"
    closest = _registry.closest_available(name, models)
    if closest is not None:
        message += f" The closest available model is {closest!r}"
        if closest.partition("_")[2] == name.partition("_")[2]:
            message += f" (the same network, trained on {models[closest].get('dataset')!r} data)"
        message += "."
    command = entry.get("train_command")
    if command:
        message += f" To train and package them yourself, run: {command}"
    return message


def verify_files(
    name: str,
    paths: dict[str, pathlib.Path],
    entry: dict[str, Any],
    discard: bool,
    registry: str | os.PathLike | None = None,
) -> None:
    """Checks every file's sha256 against the registry entry.

    Args:
        name: Zoo name (for messages).
        paths: File name -> local path.
        entry: The registry entry.
        discard: Remove failing files and, for cache entries, the blob they link to.
        registry: The registry file the entry came from (for messages).

    Raises:
        ChecksumError: if a file is not the one the registry pins (all files are checked
            first, so the message names every bad one).
    """
    expected = entry.get("files") or {}
    bad = []
    for file_name, path in paths.items():
        want = expected.get(file_name)
        got = _registry.file_sha256(path)
        if want is None or got != want:
            bad.append((file_name, path, want, got))
    if not bad:
        return
    if discard:
        for _, path, _, _ in bad:
            _discard(path)
    details = "; ".join(f"{f}: expected sha256 {w}, got {g} ({p})" for f, p, w, g in bad)
    raise ChecksumError(
        f"Refusing to load zoo model {name!r}: file contents differ from the registry "
        f"({_registry.registry_path(registry)}): {details}. Nothing was loaded."
        + (
            " The bad files were removed from the Hub cache; loading again downloads them "
            "anew. If the mismatch comes back, the Hub repository holds other files than the "
            "registry pins: load without a revision (the registry's pinned one), or upgrade "
            "sparse_keras for a registry that matches."
            if discard
            else f" The local copy in {next(iter(paths.values())).parent} is not the "
            "registered one: restore it (e.g. git checkout of zoo/), or point "
            f"{_registry.ZOO_DIR_ENV} at a folder with the registered files."
        )
    )


def _discard(path: pathlib.Path) -> None:
    # A Hub cache entry is snapshots/<commit>/<file> -> ../../blobs/<etag>; a bad blob left
    # behind would be re-linked without a download, so both go.
    blob = path.resolve()
    for target in {blob, path}:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def _hub_paths(
    entry: dict[str, Any], revision: str, cache_dir: str | os.PathLike | None
) -> dict[str, pathlib.Path]:
    """The files from the Hub or its cache; raises `_HubUnavailableError` saying why not."""
    from huggingface_hub import hf_hub_download

    cache_dir = cache_dir or os.environ.get("HF_HUB_CACHE") or None
    endpoint = os.environ.get("HF_ENDPOINT") or None
    offline = _offline()
    # Offline, or the Hub is unreachable: the cache (refs for a branch, snapshots for a
    # commit) still answers, and a miss raises LocalEntryNotFoundError at once.
    reachable = not offline and _endpoint_reachable(endpoint)
    try:
        with _hub_offline_mode(offline):
            return {
                file_name: pathlib.Path(
                    hf_hub_download(
                        entry["repo_id"],
                        file_name,
                        revision=revision,
                        cache_dir=cache_dir,
                        endpoint=endpoint,
                        local_files_only=not reachable,
                        library_name="sparse_keras",
                        library_version=sparse_keras.__version__,
                    )
                )
                for file_name in _registry.LOAD_FILES
            }
    except _download_errors() as err:
        url = _endpoint_url(endpoint)
        if offline:
            raise _HubUnavailableError(
                "offline",
                "offline mode is set (HF_HUB_OFFLINE) and the files are not in the Hub cache "
                f"({cache_dir or 'the default cache'}); unset HF_HUB_OFFLINE to download them",
            ) from err
        if not reachable:
            raise _HubUnavailableError(
                "unreachable",
                f"{url} could not be reached (no network, or a wrong HF_ENDPOINT) and the "
                "files are not in the Hub cache; check the connection and HF_ENDPOINT",
            ) from err
        raise _explain(err, entry["repo_id"], revision, url) from err


def fetch(
    name: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    registry: str | os.PathLike | None = None,
) -> dict[str, pathlib.Path]:
    """Local, verified paths of the files `load` needs (downloading them if necessary).

    Tries the Hub (or its cache); if the Hub cannot be reached, or `HF_HUB_OFFLINE` is
    set and the files are not cached, or the Hub repository or files are missing, uses
    the copy in `$SPARSE_KERAS_ZOO_DIR/<name>/` or the checkout's `zoo/<name>/`, else
    (for the README models) the copy shipped in the package, with a warning that says
    why the Hub did not serve it. An explicitly requested `revision` is never replaced
    by a local copy. Either way every file's sha256 is checked against the registry.

    Args:
        name: Zoo name.
        revision: Hub revision (branch, tag or commit); default the registry's pinned
            revision, else "main".
        cache_dir: Hub cache folder; default `$HF_HUB_CACHE` or the Hub's default.
        registry: Registry file; default as `registry.registry_path` says.

    Returns:
        `{"config.json": path, "model.weights.h5": path}`.

    Raises:
        ValueError: unknown name (the message lists the available ones).
        WeightsNotAvailableError: the registry lists the model without weights.
        ChecksumError: a file differs from the registry's sha256.
        FileNotFoundError: neither the Hub nor a local copy has the files, or the Hub
            cannot serve an explicitly requested revision; the message says why
            (offline mode, Hub not reachable, repository or revision not found).
    """
    entry = _registry.get_entry(name, registry)
    if not entry.get("available"):
        models = _registry.read_registry(registry)["models"]
        raise WeightsNotAvailableError(_not_available_message(name, entry, models))
    requested = revision
    revision = revision or entry.get("revision") or "main"
    try:
        paths = _hub_paths(entry, revision, cache_dir)
    except _HubUnavailableError as failure:
        reason = str(failure)
        if requested is not None:
            # A copy on disk holds the registry's files, not necessarily that revision:
            # never hand it out in place of a revision the caller asked for.
            raise FileNotFoundError(
                f"Could not get zoo model {name!r} at revision {requested!r} from the Hugging "
                f"Face Hub ({entry['repo_id']}): {reason}. No local copy is used for an "
                "explicit revision."
            ) from failure.__cause__
        local = _local_copy(name)
        if local is None:
            raise FileNotFoundError(
                f"Could not download zoo model {name!r} from the Hugging Face Hub "
                f"({entry['repo_id']} at revision {revision}): {reason}. There is no local "
                f"copy: {name} comes from the Hub or from a folder of zoo copies named by "
                f"{_registry.ZOO_DIR_ENV} (looked in {_registry.zoo_dir() or 'no zoo folder'}); "
                f"only {' and '.join(_embedded.EMBEDDED_MODELS)} ship with the package."
            ) from failure.__cause__
        warnings.warn(
            f"Could not download zoo model {name!r} from the Hugging Face Hub "
            f"({entry['repo_id']} at revision {revision}): {reason}. Using the copy in "
            f"{local[_registry.CONFIG_FILE].parent} after verifying its sha256 checksums.",
            stacklevel=_user_stacklevel(),
        )
        verify_files(name, local, entry, discard=False, registry=registry)
        return local
    verify_files(name, paths, entry, discard=True, registry=registry)
    return paths


def _local_copy(name: str) -> dict[str, pathlib.Path] | None:
    """A complete local copy: `$SPARSE_KERAS_ZOO_DIR` or the checkout's zoo/, else the package's."""
    folders = [_registry.zoo_dir() / name] if _registry.zoo_dir() is not None else []
    folders.append(_embedded.model_dir(name))
    for folder in folders:
        if folder is None:
            continue
        paths = {file_name: folder / file_name for file_name in _registry.LOAD_FILES}
        if all(path.is_file() for path in paths.values()):
            return paths
    return None


def load(
    name: str,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    compile: bool = False,
    *,
    registry: str | os.PathLike | None = None,
) -> keras.Model:
    """Loads a pretrained zoo model.

    Downloads `config.json` and `model.weights.h5` from the model's Hugging Face Hub
    repository (through the Hub cache), checks both against the sha256s the registry
    pins, builds the network with `sparse_keras.models.build` from the config, and
    loads the weights. Nothing from the download is executed: the config is data and
    the weights file holds tensors only. Without the Hub (no network, `HF_HUB_OFFLINE=1`
    with an empty cache, repository not published), a local copy is used with a warning
    after the same checks: `$SPARSE_KERAS_ZOO_DIR/<name>/`, the source checkout's
    `zoo/<name>/`, or for `mnist_sparse_cnn2` and `mnist_dense_cnn2` the copy shipped
    in the package (see `fetch`).

    Args:
        name: Zoo name, one of `list_models()`, e.g. "mnist_sparse_cnn2".
        revision: Hub revision to download; default the one the registry pins.
        cache_dir: Hub cache folder; default `$HF_HUB_CACHE` or the Hub's default.
        compile: Compile for evaluation and fine-tuning: sparse categorical
            cross-entropy on logits, accuracy, SGD.
        registry: Registry file; default `$SPARSE_KERAS_ZOO_REGISTRY` or the package's.

    Returns:
        The `keras.Model`, mapping preprocessed inputs to logits, with its masks,
        duty cycles and boost strengths restored.

    Raises:
        ValueError: unknown name (the message lists the available ones).
        WeightsNotAvailableError: no weights exist for the name (the message gives the
            command that trains them).
        ChecksumError: a downloaded or local file is not the registered one; nothing is
            loaded and a bad cached file is removed.
        FileNotFoundError: neither the Hub nor a local copy could provide the files.

    Example:

    >>> model = sparse_keras.zoo.load("mnist_sparse_cnn2")  # doctest: +SKIP
    >>> model.predict(images).argmax(-1)  # doctest: +SKIP
    """
    paths = fetch(name, revision=revision, cache_dir=cache_dir, registry=registry)
    config = json.loads(paths[_registry.CONFIG_FILE].read_text())
    model = artifacts.model_from_config(config)
    model.load_weights(paths[_registry.WEIGHTS_FILE])
    if compile:
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    return model


def list_models(registry: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The zoo's models with their summary metrics.

    Args:
        registry: Registry file; default `$SPARSE_KERAS_ZOO_REGISTRY` or the package's.

    Returns:
        One dict per model, in registry order: `name`, `dataset`, `clean_accuracy`,
        `noise_score`, `max_score`, `parameters`, `nonzero_parameters`, `available`
        (metrics are None for a model without weights).

    Example:

    >>> [row["name"] for row in list_models() if row["available"]]  # doctest: +SKIP
    ['mnist_sparse_cnn2']
    """
    rows = []
    for name, entry in _registry.read_registry(registry)["models"].items():
        metrics = entry.get("metrics") or {}
        rows.append(
            {
                "name": name,
                "dataset": entry.get("dataset"),
                "clean_accuracy": metrics.get("clean_accuracy"),
                "noise_score": metrics.get("noise_score"),
                "max_score": metrics.get("max_score"),
                "parameters": metrics.get("parameters"),
                "nonzero_parameters": metrics.get("nonzero_parameters"),
                "available": bool(entry.get("available")),
            }
        )
    return rows


def info(name: str, registry: str | os.PathLike | None = None) -> dict[str, Any]:
    """Everything the registry knows about a zoo model.

    Returns:
        The registry entry plus `name` and `hub_url`: `dataset`, `network`, `recipe`,
        `repo_id`, `revision`, `files` (sha256 by file name), `metrics`, `available`,
        and for a model without weights `unavailable_reason` and `train_command`.

    Raises:
        ValueError: unknown name (the message lists the available ones).
    """
    entry = _registry.get_entry(name, registry)
    endpoint = (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    return {"name": name, **entry, "hub_url": f"{endpoint}/{entry['repo_id']}"}
