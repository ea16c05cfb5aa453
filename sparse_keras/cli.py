"""The `sparse-keras` command.

Each sub-command lives beside the code it drives: a module offers
`register_cli(subparsers)`, which adds its parser and sets `func` to the function
that runs it (taking the parsed arguments, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules offering sub-commands, in the order `--help` lists them.
_COMMAND_MODULES = (
    "sparse_keras.robustness",
    "sparse_keras.zoo",
    "sparse_keras.theory",
    "sparse_keras.export",
    "sparse_keras.compute",
    "sparse_keras.train_cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sparse-keras",
        description="Sparse networks from 'How Can We Be So Dense?': zoo, noise robustness, theory, export.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue  # that part of the package is not installed / written yet
            raise
        module.register_cli(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"sparse-keras {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
