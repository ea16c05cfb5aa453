"""The `sparse-keras` command: one module per sub-command, TensorFlow loaded only when needed.

Each command module (`evaluate`, `zoo`, `theory`, `export`, `flops`) offers
`add_parser(subparsers)`, which adds its parser and sets `func` to the function that
runs it (taking the parsed arguments, returning an exit code). The modules import
nothing heavy at module level, so `sparse-keras --help` and `sparse-keras evaluate
--help` answer without loading TensorFlow.

A run is quiet by default: TensorFlow's C++ log (`TF_CPP_MIN_LOG_LEVEL=3`, unless you
set that variable yourself), its Python loggers (tensorflow, absl) and Keras's
warnings are silenced; `--verbose` brings them back. Failures print one line,
`sparse-keras <command>: error: <message>`, and exit with status 1; usage errors exit
with status 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import re
import sys
import tempfile
import warnings

# Sub-command modules in `sparse_keras.cli`, in the order `--help` lists them.
COMMANDS = ("evaluate", "zoo", "theory", "export", "flops")

PROG = "sparse-keras"
# Python loggers of the libraries a command loads, kept to errors unless --verbose.
_QUIET_LOGGERS = ("tensorflow", "absl", "h5py")

# The failures a command can meet in normal use (bad path, unknown name, offline Hub,
# checksum mismatch, unreadable file, bad value): reported on one line, not as a
# traceback. The zoo's own errors derive from ValueError / FileNotFoundError.
# Anything else is a bug and keeps its traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    KeyError,
    OSError,  # FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, ...
    EOFError,
)


def _verbose_parent() -> argparse.ArgumentParser:
    # SUPPRESS: a sub-command's default must not overwrite a `--verbose` given before
    # the command name (argparse copies a sub-parser's defaults over the main ones).
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show TensorFlow's and Keras's log messages and warnings, and tracebacks on errors",
    )
    return parent


def build_parser() -> argparse.ArgumentParser:
    """The `sparse-keras` argument parser with every sub-command.

    Returns:
        An `argparse.ArgumentParser`; `parse_args` gives a namespace whose `func`
        runs the chosen command.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Sparse networks from 'How Can We Be So Dense?': noise robustness, the model "
            "zoo, theory figures, export for TF Serving, multiply counts."
        ),
        epilog="Run 'sparse-keras COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False,
        help="show TensorFlow's and Keras's log messages and warnings, and tracebacks on errors",
    )
    from sparse_keras import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parent = _verbose_parent()
    for name in COMMANDS:
        module = importlib.import_module(f"sparse_keras.cli.{name}")
        module.add_parser(subparsers, parents=[parent])
    return parser


def quiet_tensorflow(verbose: bool = False) -> None:
    """Silences TensorFlow's and Keras's logging for a command-line run.

    Must run before TensorFlow is imported: its C++ log level is read once, at load.

    Args:
        verbose: Leave every log and warning as it is.
    """
    if verbose:
        return
    # The user's own setting wins (e.g. TF_CPP_MIN_LOG_LEVEL=0 to debug a device).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Named loggers exist before their libraries are imported; the libraries reuse them.
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Keras and TensorFlow warn about things a command's user cannot act on (a model
    # compiled without metrics, retracing); the command's own warnings stay.
    for module in (r"keras(\..*)?$", r"tensorflow(\..*)?$", r"tf_keras(\..*)?$"):
        warnings.filterwarnings("ignore", module=module)


# Lines TensorFlow's native libraries print while they load, before their log level is
# in force: Abseil writes everything logged before `absl::InitializeLog()` to stderr,
# whatever TF_CPP_MIN_LOG_LEVEL says ("WARNING: All log messages before ...", then
# "I0000 00:00:... cudart_stub.cc:31] ...", the CPU-feature notice).
_NATIVE_LOG_LINE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\]"
    r"|To enable the following instructions:)"
)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and Keras with their load-time native log lines removed.

    Those lines are written straight to file descriptor 2 by C++ code, so Python's
    logging and `TF_CPP_MIN_LOG_LEVEL` cannot stop them; the descriptor is pointed at
    a temporary file for the import, and whatever else was written there (a real
    error, say) is passed on to stderr afterwards.
    """
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            kept = [line for line in text.splitlines() if not _NATIVE_LOG_LINE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _one_line_warnings(command: str | None) -> None:
    """Prints warnings as `sparse-keras <command>: warning: ...` (no source line)."""
    prefix = f"{PROG} {command}" if command else PROG

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"{prefix}: warning: {text}", file=file or sys.stderr)

    warnings.showwarning = show


def _error_text(err: BaseException) -> str:
    # KeyError's str() is the repr of its key; the other messages are sentences.
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    text = " ".join(str(text).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Runs `sparse-keras` with `argv` (default: the process's arguments).

    Args:
        argv: Arguments after the program name.

    Returns:
        The exit status: 0 success, 1 failure, 2 usage error (argparse exits with 2
        itself before a command runs).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    verbose = bool(getattr(args, "verbose", False))
    command = (
        " ".join(part for part in (args.command, getattr(args, "zoo_command", None)) if part)
        or None
    )
    # Warning filters and logger levels go back as they were when main returns, so a
    # caller (a test, a notebook) keeps its own settings.
    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS}
    with warnings.catch_warnings():
        try:
            if not verbose:
                quiet_tensorflow()
                _one_line_warnings(command)
                if getattr(args, "uses_tensorflow", True):
                    import_tensorflow_quietly()
            return int(args.func(args) or 0)
        except EXPECTED_ERRORS as err:
            if verbose:
                raise
            print(f"{PROG} {command}: error: {_error_text(err)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(f"{PROG} {command}: interrupted", file=sys.stderr)
            return 130
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


__all__ = [
    "COMMANDS",
    "EXPECTED_ERRORS",
    "build_parser",
    "import_tensorflow_quietly",
    "main",
    "quiet_tensorflow",
]
