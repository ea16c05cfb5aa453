"""`NoiseReport`: one model's accuracy at each noise level and its noise score.

The *noise score* is the number of correct answers summed over all levels (MNIST: at
most 11 levels x 10,000 images = 110,000). A report prints as text or Markdown, saves
and reads back as JSON, and plots its curve (`plot`; `figures.plot_reports` compares
several).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np


@dataclasses.dataclass
class NoiseReport:
    """Accuracy of one model at each noise level, and its noise score.

    Attributes:
        model_name: Name of the model evaluated.
        dataset: Name of the test data ("mnist", "gsc" or a user's).
        noise_levels: The levels, in evaluation order.
        correct: Correct answers at each level.
        test_size: Examples per level.
        seed: Noise seed; the same seed reproduces the same noise and score.
        timing: Seconds spent: "total", "data" (waiting for noisy batches) and "model".
        versions: Package versions the numbers were produced with.
        engine: How the model ran: "keras", "sparse" (the sparse inference path) or
            "callable" (a user's function); "" when not recorded.

    Example:

    >>> report = NoiseReport("m", "mnist", (0.0, 0.5), (990, 800), 1000, 0)
    >>> report.noise_score, report.max_score, report.accuracies
    (1790, 2000, (0.99, 0.8))
    """

    model_name: str
    dataset: str
    noise_levels: tuple[float, ...]
    correct: tuple[int, ...]
    test_size: int
    seed: int
    timing: dict[str, float] = dataclasses.field(default_factory=dict)
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    engine: str = ""

    def __post_init__(self):
        self.seed = _check_seed(self.seed)
        self.noise_levels = tuple(float(level) for level in self.noise_levels)
        self.correct = tuple(int(count) for count in self.correct)
        if len(self.noise_levels) != len(self.correct):
            raise ValueError(
                f"{len(self.noise_levels)} noise levels but {len(self.correct)} correct counts."
            )
        if self.test_size <= 0 or any(not 0 <= c <= self.test_size for c in self.correct):
            raise ValueError(
                f"Correct counts {self.correct} do not fit test_size {self.test_size}."
            )

    @property
    def accuracies(self) -> tuple[float, ...]:
        """Fraction correct at each level."""
        return tuple(count / self.test_size for count in self.correct)

    @property
    def noise_score(self) -> int:
        """Correct answers summed over all levels (the paper's noise score)."""
        return sum(self.correct)

    @property
    def max_score(self) -> int:
        """The best possible noise score, levels x test size."""
        return len(self.noise_levels) * self.test_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the derived accuracies and scores included."""
        return {
            "model_name": self.model_name,
            "dataset": self.dataset,
            "noise_levels": list(self.noise_levels),
            "accuracies": list(self.accuracies),
            "correct": list(self.correct),
            "noise_score": self.noise_score,
            "max_score": self.max_score,
            "test_size": self.test_size,
            "seed": self.seed,
            "timing": dict(self.timing),
            "versions": dict(self.versions),
            "engine": self.engine,
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text; also written to `path` when given.

        The file is written under a temporary name beside `path` and renamed into
        place, so an interrupted write never leaves a truncated report; an unwritable
        `path` raises `ValueError` (see `check_output_path`) before anything is written.
        """
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            path = check_output_path(path, "report path")
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            try:
                temporary.write_text(text)
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseReport:
        """Inverse of `to_dict` (derived entries are checked, not trusted)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        missing = {"model_name", "dataset", "noise_levels", "correct", "test_size", "seed"} - set(
            data
        )
        if missing:
            raise ValueError(f"Noise report is missing {sorted(missing)}.")
        report = cls(**{key: value for key, value in data.items() if key in fields})
        if "noise_score" in data and data["noise_score"] != report.noise_score:
            raise ValueError(
                f"Noise report says noise_score {data['noise_score']} but its counts sum to {report.noise_score}."
            )
        return report

    @classmethod
    def from_json(cls, source: str | os.PathLike) -> NoiseReport:
        """Reads a report from JSON text or from a path to a `.json` file."""
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{"):
            text = pathlib.Path(source).read_text()
        return cls.from_dict(json.loads(text))

    def to_markdown(self) -> str:
        """A Markdown table of the curve, followed by the noise score."""
        lines = [
            f"**{self.model_name}** on {self.dataset} (test size {self.test_size:,}, seed {self.seed})",
            "",
            "| noise level | accuracy | correct |",
            "|---:|---:|---:|",
        ]
        for level, accuracy, count in zip(
            self.noise_levels, self.accuracies, self.correct, strict=True
        ):
            lines.append(f"| {level:.2f} | {100 * accuracy:.2f}% | {count:,} |")
        lines += ["", f"Noise score: **{self.noise_score:,}** / {self.max_score:,}"]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """A plain-text table for terminals."""
        lines = [
            f"{self.model_name} on {self.dataset} ({self.test_size:,} test examples, seed "
            f"{self.seed}{f', {self.engine} engine' if self.engine else ''})",
            f"{'noise level':>11}  {'accuracy':>8}  {'correct':>9}",
        ]
        for level, accuracy, count in zip(
            self.noise_levels, self.accuracies, self.correct, strict=True
        ):
            lines.append(f"{level:>11.2f}  {100 * accuracy:>7.2f}%  {count:>9,}")
        lines.append(f"noise score: {self.noise_score:,} / {self.max_score:,}")
        return "\n".join(lines)

    def plot(self, ax=None, **line_kwargs):
        """Plots accuracy (%) against noise level; returns the matplotlib axes.

        Args:
            ax: Axes to draw on; a new figure's axes if None.
            **line_kwargs: Passed to `ax.plot` (e.g. `label`, `color`).
        """
        ax = _new_axes() if ax is None else ax
        line_kwargs.setdefault("label", f"{self.model_name} ({self.noise_score:,})")
        line_kwargs.setdefault("marker", "o")
        ax.plot(self.noise_levels, [100 * a for a in self.accuracies], **line_kwargs)
        ax.set_xlabel("noise level η")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"Accuracy under noise ({self.dataset})")
        ax.grid(True, alpha=0.3)
        ax.legend()
        return ax


def _new_axes():
    """A new matplotlib figure's axes, 6 x 4 inches."""
    # A bare Figure (no pyplot) works headless and leaves pyplot's global state alone;
    # savefig uses the Agg canvas.
    from matplotlib.figure import Figure

    return Figure(figsize=(6, 4), layout="constrained").add_subplot()


def _check_seed(seed) -> int:
    """The noise seed as an int; floats, bools and strings are refused, not truncated."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"seed must be an integer, got {seed!r} ({type(seed).__name__}): a float seed "
            "would be truncated and give another seed's noise."
        )
    if not -(2**63) <= int(seed) < 2**63:
        raise ValueError(f"seed must fit in a signed 64-bit integer, got {seed!r}.")
    return int(seed)


def check_output_path(path: str | os.PathLike, what: str = "output file") -> pathlib.Path:
    """Checks up front that a report can be written to `path`, writing nothing.

    Commands call it before a long evaluation, so that a mistyped `--json` or
    `--plot` path fails in a second rather than after the evaluation has run.

    Args:
        path: The file to be written (it may exist: it will be replaced).
        what: How to name the path in the error, e.g. "--json path".

    Returns:
        `path` as a `pathlib.Path` (`~` expanded).

    Raises:
        ValueError: if `path` is empty, is a directory, or its parent folder does not
            exist, is not a folder, or is not writable.
    """
    if not isinstance(path, str | os.PathLike) or not str(path):
        raise ValueError(f"The {what} must be a file path, got {path!r}.")
    path = pathlib.Path(path).expanduser()
    parent = path.parent
    if path.is_dir():
        raise ValueError(f"The {what} {str(path)!r} is a directory; expected a file path.")
    if not parent.exists():
        raise ValueError(
            f"The {what} {str(path)!r} cannot be written: its folder {str(parent)!r} does not "
            "exist (create it first)."
        )
    if not parent.is_dir():
        raise ValueError(
            f"The {what} {str(path)!r} cannot be written: {str(parent)!r} is not a folder."
        )
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(
            f"The {what} {str(path)!r} cannot be written: no write permission in {str(parent)!r}."
        )
    return path
