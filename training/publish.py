"""Packages finished training runs as zoo folders, checks them, and publishes them to the Hub.

    python -m training.publish package --recipe mnist_sparse_cnn2 --seed 0
    python -m training.publish check mnist_sparse_cnn2
    HF_TOKEN=hf_... python -m training.publish publish mnist_sparse_cnn2

`package` reads `training/runs/<recipe>/seed<k>/final.weights.h5` and
`training/results/<recipe>/seed<k>.json` and writes `zoo/<name>/` (config.json,
model.weights.h5, metrics.json, README.md model card), then records the files'
sha256s and summary metrics in `sparse_keras/zoo/registry.json`. `check` validates a
folder against the registry. `publish` checks, uploads the folder to the registry's Hub
repository (`sparse-keras/<name>`) with `HfApi.upload_folder`, and pins the new commit
as the registry's revision: commit `zoo/<name>/` and the registry afterwards.

The same commands are `sparse-keras zoo package|check|publish`; the logic lives in
`sparse_keras.zoo.publishing`.
"""

from __future__ import annotations

import argparse
import sys

from sparse_keras.cli.zoo import add_packaging_commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.publish", description=__doc__.split("\n\n")[0]
    )
    add_packaging_commands(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"python -m training.publish {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
