"""The documentation works: its code runs, its examples hold, and the site builds.

- Every fenced ```python block of README.md and docs/**/*.md runs, page by page: the
  blocks of a page in order, in one fresh namespace, in a temporary working directory,
  with the real data (`SPARSE_KERAS_DATA`) and the Hub offline (models come from the
  checkout's `zoo/`). A block right after a `<!-- skip-test -->` line is not run: only
  for what cannot run here (a TF Serving server, a real Hub upload).
- Every docstring example (`>>>`) of the package's public modules runs as a doctest.
- `mkdocs build --strict` succeeds (any warning, e.g. a broken link or a docstring that
  names a parameter the function lacks, fails it) and the API reference renders every
  public name of every public module.
"""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import importlib.util
import inspect
import io
import os
import pathlib
import pkgutil
import re
import subprocess
import sys
import time
import zlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SKIP_MARKER = "<!-- skip-test -->"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n`]*$")

# Page examples that train or sweep at full size are run smaller here, by exact text
# replacement in the page's code. Each `old` must occur in the page, so editing the page
# without updating its entry fails loudly instead of running the full-size version.
SMALLER = {
    "README.md": [
        (
            'robustness.evaluate(model, "mnist")',
            'robustness.evaluate(model, "mnist", max_examples=200, progress=False)',
        ),
    ],
    "docs/fine_tuning.md": [
        (
            'x_train, y_train = fashion_mnist("train")',
            'x_train, y_train = fashion_mnist("train")\n'
            "x_train, y_train = x_train[:512], y_train[:512]",
        ),
        (
            'x_test, y_test = fashion_mnist("test")',
            'x_test, y_test = fashion_mnist("test")\nx_test, y_test = x_test[:256], y_test[:256]',
        ),
        ("epochs=3,", "epochs=1, verbose=0,"),
    ],
    "docs/theory.md": [
        (
            "theory.figure2(n_values=range(1000, 20001, 1000))",
            "theory.figure2(n_values=[1000, 20000], a_values=[24, 64], trials=2_000, progress=False)",
        ),
        (
            "theory.figure3_sweeps(trials=200_000)",
            "theory.figure3_sweeps(n_values=[200, 1000], a_values=[24], scales=[1.0],"
            " scale_a_values=[24], trials=2_000, progress=False)",
        ),
    ],
}


@dataclasses.dataclass
class Block:
    page: str
    line: int
    code: str
    skip: bool


def code_blocks(path: pathlib.Path, language: str = "python") -> list[Block]:
    """The fenced code blocks of a Markdown file in one language, in page order."""
    page = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
    blocks: list[Block] = []
    lines = path.read_text().splitlines()
    previous = ""  # the last non-blank line before the current one
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            if lines[i].strip():
                previous = lines[i].strip()
            i += 1
            continue
        indent, start = match.group("indent"), i
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start + 1}: code block is never closed.")
        if match.group("lang") == language:
            blocks.append(Block(page, start + 2, "\n".join(body) + "\n", previous == SKIP_MARKER))
        previous = "```"
        i += 1
    return blocks


def doc_pages() -> list[pathlib.Path]:
    return [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]


def pages_with_code() -> list[str]:
    return [
        path.relative_to(REPO).as_posix()
        for path in doc_pages()
        if any(not block.skip for block in code_blocks(path))
    ]


def smaller(page: str, code: str, used: set[int]) -> str:
    for index, (old, new) in enumerate(SMALLER.get(page, [])):
        if old in code:
            code = code.replace(old, new)
            used.add(index)
    return code


@pytest.fixture
def docs_environment(data_dir, tmp_path, monkeypatch):
    """A temporary working directory, the real data, and no network for the zoo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPARSE_KERAS_DATA", str(data_dir))
    # The examples load zoo models: from the checkout's zoo/, never from the real Hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return tmp_path


@pytest.mark.parametrize("page", pages_with_code())
# Offline, `zoo.load` warns that it uses the checkout's zoo/ copy: expected here.
@pytest.mark.filterwarnings("ignore:Could not download zoo model")
def test_page_examples_run(page, docs_environment, capsys):
    # CI sets FASHION_MNIST_DIR (.ci/run unpacks the Debian package): there, missing files
    # fail the example. Elsewhere the system-wide package is used if installed.
    if (
        page == "docs/fine_tuning.md"
        and "FASHION_MNIST_DIR" not in os.environ
        and not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir()
    ):
        pytest.skip(
            "Fashion-MNIST is not installed: apt-get install dataset-fashion-mnist, or "
            "unpack it and set FASHION_MNIST_DIR (docs/fine_tuning.md)"
        )
    namespace: dict = {"__name__": "__docs__"}
    used: set[int] = set()
    ran = 0
    for block in code_blocks(REPO / page):
        if block.skip:
            continue
        code = smaller(page, block.code, used)
        started = time.perf_counter()
        try:
            exec(compile(code, f"{page}:{block.line}", "exec"), namespace)
        except Exception as err:
            raise AssertionError(
                f"The example at {page}:{block.line} failed: {type(err).__name__}: {err}"
            ) from err
        with capsys.disabled():
            print(f"\n  {page}:{block.line} ran in {time.perf_counter() - started:.1f} s", end="")
        ran += 1
    unused = set(range(len(SMALLER.get(page, [])))) - used
    assert not unused, (
        f"tests/test_docs.py SMALLER[{page!r}] has replacements that no longer match the page: "
        f"{[SMALLER[page][i][0] for i in sorted(unused)]}; update them with the page."
    )
    assert ran


def test_every_skipped_block_is_marked_on_purpose():
    """Skipped blocks are rare and each one is an example that needs a server or the Hub."""
    skipped = [block for path in doc_pages() for block in code_blocks(path) if block.skip]
    for block in skipped:
        assert re.search(r"urllib|grpc|HF_TOKEN|publish\(|localhost", block.code), (
            f"{block.page}:{block.line} is marked {SKIP_MARKER} but needs no server or Hub: "
            "make it run instead."
        )


def test_code_block_parser(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "x\n\n<!-- skip-test -->\n```python\na = 1\n```\n\n"
        "- item\n\n    ```python\n    b = 2\n    ```\n\n```bash\nls\n```\n"
    )
    blocks = code_blocks(page)
    assert [(b.code, b.skip) for b in blocks] == [("a = 1\n", True), ("b = 2\n", False)]


# --------------------------------------------------------------------------- doctests


def public_modules() -> list[str]:
    import sparse_keras

    names = ["sparse_keras"]
    for info in pkgutil.walk_packages(sparse_keras.__path__, "sparse_keras."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _doctest_globals() -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    import sparse_keras
    import sparse_keras.models  # noqa: F401  (examples call sparse_keras.models.build)

    return {"np": np, "tf": tf, "keras": keras, "sparse_keras": sparse_keras}


def run_doctests(module, extra_globals: dict) -> tuple[int, str]:
    """Runs a module's docstring examples; returns (examples run, failure report)."""
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    out = io.StringIO()
    examples = 0
    for test in doctest.DocTestFinder().find(module, module.__name__):
        if not test.examples:
            continue
        for name, value in extra_globals.items():
            test.globs.setdefault(name, value)
        examples += len(test.examples)
        runner.run(test, out=out.write)
    return examples, out.getvalue()


# Public modules that define functions or classes but have no docstring example, each
# with the reason. Every other such module must have at least one example, so that
# test_docstring_examples runs something for it; a module listed here that gains
# examples must leave the list. (Packages that only re-export names need no entry:
# their names' examples run in the modules that define them.)
NO_EXAMPLES = {
    "sparse_keras.data.download": "downloads from the internet; tests/test_data_*.py use a local server",
    "sparse_keras.data.fsdd": "no docstring examples yet; tests/test_data_fsdd.py runs its loaders",
    "sparse_keras.data.mnist": "no docstring examples yet; tests/test_data_mnist.py runs its loaders",
    "sparse_keras.layers.winner_selection": "a switch of the training step; tests/test_winner_selection.py",
    "sparse_keras.validation": "internal argument checks; tests/test_hostile_inputs.py",
    "sparse_keras.zoo.artifacts": "packaging helpers for training/publish.py; tests/test_zoo.py",
    "sparse_keras.zoo.card": "model-card rendering; tests/test_zoo.py",
    "sparse_keras.zoo.checks": "zoo-folder validation; tests/test_zoo.py",
    "sparse_keras.zoo.registry": "registry file access; tests/test_zoo.py",
}
# Command-line modules: their commands run in tests/test_cli*.py and the pages' examples.
NO_EXAMPLES_PREFIXES = ("sparse_keras.cli",)


def defines_anything(module) -> bool:
    """Whether a module defines a public function or class of its own (not re-exported)."""
    return any(
        (inspect.isfunction(value) or inspect.isclass(value))
        and getattr(value, "__module__", None) == module.__name__
        for name, value in vars(module).items()
        if not name.startswith("_")
    )


@pytest.mark.parametrize("module_name", public_modules())
@pytest.mark.filterwarnings("ignore:Could not download zoo model")
def test_docstring_examples(module_name, docs_environment):
    module = importlib.import_module(module_name)
    examples, failures = run_doctests(module, _doctest_globals())
    assert not failures, failures
    if module_name in NO_EXAMPLES:
        assert not examples, (
            f"{module_name} has {examples} examples now: remove it from NO_EXAMPLES."
        )
    elif defines_anything(module) and not module_name.startswith(NO_EXAMPLES_PREFIXES):
        assert examples, (
            f"{module_name} defines public functions or classes but no docstring example "
            "ran: add one, or list the module in tests/test_docs.py NO_EXAMPLES with the reason."
        )


def test_no_examples_list_names_existing_modules():
    assert set(NO_EXAMPLES) <= set(public_modules())


def test_griffe_extension_examples():
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("griffe_doctests", DOCS / "griffe_doctests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    examples, failures = run_doctests(module, {})
    assert examples and not failures, failures


# --------------------------------------------------------------------------- the site


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_table_lists_every_registry_model():
    import json

    hooks = _hooks()
    table = hooks.expand_markers("<!-- generated: zoo-models -->\n")
    for name, entry in json.loads(hooks.REGISTRY.read_text())["models"].items():
        assert f"| `{name}` | {entry['dataset']} |" in table
    with pytest.raises(ValueError, match="unknown marker"):
        hooks.expand_markers("<!-- generated: no-such-table -->\n")


def read_inventory(path: pathlib.Path) -> set[str]:
    """The object names in a Sphinx `objects.inv` (what mkdocstrings rendered)."""
    data = path.read_bytes()
    header_end = 0
    for _ in range(4):  # four plain-text header lines, then zlib
        header_end = data.index(b"\n", header_end) + 1
    lines = zlib.decompress(data[header_end:]).decode().splitlines()
    return {line.split(" ", 1)[0] for line in lines if line}


def public_names(module) -> dict[str, object]:
    """`__all__`, else the classes and functions the module itself defines."""
    if hasattr(module, "__all__"):
        return {name: getattr(module, name) for name in module.__all__}
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


def _resolve(path: str):
    module_name, _, attribute = path.rpartition(".")
    while module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module_name, _, parent = module_name.rpartition(".")
            attribute = f"{parent}.{attribute}"
            continue
        value = module
        for part in attribute.split("."):
            value = getattr(value, part, None)
        return value
    return None


def test_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    pytest.importorskip("mkdocstrings")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-8000:]
    assert (site / "index.html").is_file()

    rendered = read_inventory(site / "objects.inv")
    rendered_objects = {id(obj) for obj in map(_resolve, rendered) if obj is not None}
    missing = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name, value in public_names(module).items():
            if f"{module_name}.{name}" not in rendered and id(value) not in rendered_objects:
                missing.append(f"{module_name}.{name}")
    assert not missing, (
        f"Public names missing from the API reference (docs/api/*.md): {missing}. "
        "Add their module (`::: module`) or the name to a page."
    )


def test_fidelity_page_names_tests_that_exist():
    # Every "pinned by" reference on the fidelity page points at a real test function:
    # `tests/x.py::name` sets the file, a following bare `::name` reuses it.
    import ast

    text = (DOCS / "fidelity.md").read_text()
    current, checked = None, 0
    for path, name in re.findall(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", text):
        if path:
            current = path
            assert (REPO / path).exists(), path
        if name:
            tree = ast.parse((REPO / current).read_text())
            functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert name in functions, f"{current}::{name} named in docs/fidelity.md is missing"
            checked += 1
    assert checked >= 10
