"""Compiling the package's C++ sources into shared libraries, once, into a user cache.

Two parts of `sparse_keras` ship as C++ source and are compiled on first use with the
system's compiler: the k-winners training ops (`layers/winner_ops.py`, linked against
TensorFlow) and the sparse inference kernels (`compute/native_kernels.py`, plain C
functions called through ctypes). This module is what they share: where compiled
libraries are kept, how a library's file name pins down everything that went into it,
and a build that never leaves a half-written file under that name.

Libraries live in `$SPARSE_KERAS_CACHE/<kind>` (default `~/.cache/sparse_keras/<kind>`,
`$XDG_CACHE_HOME` replacing `~/.cache` where it is set). The compiler is `$CXX`, else
`g++`, else `c++`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CACHE_ENV = "SPARSE_KERAS_CACHE"
COMPILER_ENV = "CXX"

_log = logging.getLogger(__name__)


def cache_dir(kind: str) -> Path:
    """The folder compiled libraries of one kind (e.g. "ops", "kernels") are kept in.

    Example:

    >>> import os
    >>> os.environ["SPARSE_KERAS_CACHE"] = "/tmp/sk-cache"
    >>> str(cache_dir("kernels"))
    '/tmp/sk-cache/kernels'
    >>> del os.environ["SPARSE_KERAS_CACHE"]
    """
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root) / kind
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "sparse_keras" / kind


def cpu_signature() -> str:
    """What identifies this CPU for code built with `-march=native`: its model and
    instruction-set flags (from /proc/cpuinfo where there is one), so that a cache
    shared between machines never hands one CPU another's instructions."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    lines = {line.split(":")[0].strip(): line for line in info.splitlines() if ":" in line}
    return "\n".join(lines[key] for key in wanted if key in lines) or platform.machine()


def library_path(source: Path, kind: str, flags: Sequence[str], key: Sequence[str] = ()) -> Path:
    """The library's path in the cache (it may not exist yet): `<source stem>-<hash>.so`,
    the hash covering the source, the flags, the Python version and `key` (anything
    else the build depends on, e.g. the TensorFlow version or `cpu_signature()`).

    Example:

    >>> from sparse_keras.compute import native_kernels
    >>> path = library_path(native_kernels.SOURCE, "kernels", ["-O3"], ["one CPU"])
    >>> path.name.startswith("sparse_kernels-") and path.suffix == ".so"
    True
    >>> path == library_path(native_kernels.SOURCE, "kernels", ["-O3"], ["another CPU"])
    False
    """
    digest = hashlib.sha256(Path(source).read_bytes())
    digest.update("\0".join([sys.version, *flags, *key]).encode())
    return cache_dir(kind) / f"{Path(source).stem}-{digest.hexdigest()[:16]}.so"


def build(
    source: Path,
    kind: str,
    flags: Sequence[str],
    link_args: Sequence[str] = (),
    key: Sequence[str] = (),
    what: str = "a native library",
) -> Path:
    """Compiles `source` into the cache unless it is there already; returns the path.

    Args:
        source: The C++ file.
        kind: The cache subfolder.
        flags: Compiler flags (part of the library's name).
        link_args: Arguments after the source (include and link flags), not hashed:
            put what they depend on into `key`.
        key: Further strings the library depends on.
        what: How the log names the library while it compiles.

    Raises:
        RuntimeError: If there is no compiler or it fails (with its last lines of errors).
        OSError: If the cache folder cannot be written.
    """
    path = library_path(source, kind, flags, key)
    if path.exists():
        return path
    compiler = os.environ.get(COMPILER_ENV) or shutil.which("g++") or shutil.which("c++")
    if not compiler:
        raise RuntimeError(f"no C++ compiler found (install g++ or set {COMPILER_ENV})")
    path.parent.mkdir(parents=True, exist_ok=True)
    _log.warning("sparse_keras: compiling %s (once, a few seconds)...", what)
    # Built under a temporary name and renamed: a concurrent or interrupted build never
    # leaves a half-written library under the final name.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    command = [compiler, *flags, str(source), "-o", tmp, *link_args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"{compiler} exited with {result.returncode}: {tail}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_once(
    state: dict,
    lock: threading.Lock,
    load: Callable[[], T],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    log: logging.Logger,
    fallback: str,
) -> T | None:
    """`load()` the first time, its result every later time; `None` (and one warning
    on `log` naming the error and `fallback`, what runs instead) where it raised one of
    `errors`, whose message is kept as `state["reason"]`. Thread-safe under `lock`.

    Args:
        state: The caller's per-process memory (an empty dict to start with; tests
            reset it by replacing it).
        lock: Held while loading, so concurrent first calls build once.
        load: Builds and loads the library.
        errors: What a library that cannot be built or loaded raises.
        log: The caller's logger.
        fallback: The warning's message, with `%s` for the error.
    """
    with lock:
        if "library" not in state:
            try:
                state["library"] = load()
                state["reason"] = None
            except errors as err:
                state["library"] = None
                state["reason"] = str(err)
                log.warning(fallback, err)
        return state["library"]


def load_or_rebuild(
    path: Path,
    build: Callable[[], Path],
    load: Callable[[Path], T],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    what: str,
) -> T:
    """`load(build())`; where a library already in the cache at `path` does not load
    (a truncated copy, a full disk), it is deleted and built again, once.

    Args:
        path: Where `build()` puts the library.
        build: Compiles the library unless it is cached; returns its path.
        load: Loads a library file.
        errors: What `load` raises for a file that is not a loadable library.
        what: How the log names the library.
    """
    cached = path.exists()
    try:
        return load(build())
    except errors:
        if not cached:
            raise
        _log.warning("sparse_keras: the cached %s %s does not load; rebuilding.", what, path)
        path.unlink()
        return load(build())
