"""The `sparse-keras` command: fast help, one parser per command, quiet runs, one-line errors."""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from sparse_keras import cli
from sparse_keras.cli import evaluate as evaluate_cli
from sparse_keras.zoo.resolve import resolve_model

REPO = pathlib.Path(__file__).resolve().parents[1]


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command must quiet TensorFlow itself
    return env


def _run_as_command(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Runs the CLI in a fresh interpreter exactly as the `sparse-keras` script does."""
    script = (
        "import sys; sys.argv[0] = 'sparse-keras'; "
        "from sparse_keras.cli import main; sys.exit(main())"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=_subprocess_env(**env),
        timeout=600,
    )


def _walk(parser: argparse.ArgumentParser, path: str = "sparse-keras"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; sys.argv[0] = 'sparse-keras'\n"
        "import sparse_keras.cli as c\n"
        "c.build_parser()\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'huggingface_hub') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env()
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["evaluate", "--help"], ["zoo", "list", "--help"]])
def test_help_answers_in_well_under_two_seconds(args):
    """Issue 21 asks < 1.5 s for the installed script; timed here through the interpreter."""
    best = float("inf")
    for _ in range(3):  # the best of three: other processes may share the CPU
        start = time.perf_counter()
        out = _run_as_command(*args)
        best = min(best, time.perf_counter() - start)
        assert out.returncode == 0 and "usage: sparse-keras" in out.stdout, out.stderr
    assert best < 1.5, f"sparse-keras {' '.join(args)} took {best:.2f} s"


def test_installed_script_help_is_fast():
    script = shutil.which("sparse-keras")
    if script is None:
        pytest.skip("the sparse-keras script is not installed (pip install -e .)")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run([script, "--help"], capture_output=True, text=True)
        best = min(best, time.perf_counter() - start)
        assert out.returncode == 0, out.stderr
    assert best < 1.5, f"sparse-keras --help took {best:.2f} s"


def test_every_command_and_option_has_help_text():
    parser = cli.build_parser()
    commands = {path for path, _ in _walk(parser)}
    for expected in (
        "evaluate",
        "zoo list",
        "zoo info",
        "zoo check",
        "theory fig2",
        "theory fig3",
        "export",
        "flops",
    ):
        assert f"sparse-keras {expected}" in commands
    missing = [
        f"{path}: {action.dest}"
        for path, sub in _walk(parser)
        for action in sub._actions
        if not isinstance(action, argparse._SubParsersAction)
        and not (action.help and action.help.strip())
    ]
    assert not missing, f"options without help text: {missing}"


def test_documented_commands_and_flags_still_parse():
    parser = cli.build_parser()
    for argv in (
        ["evaluate", "mnist_sparse_cnn2", "--json", "report.json", "--plot", "fig5b.png"],
        ["evaluate", "my_model.keras", "--dataset", "gsc", "--levels", "0,0.1", "--seed", "1"],
        ["evaluate", "m", "--batch-size", "10", "--max-examples", "5", "--data-dir", "d"],
        ["evaluate", "m", "--no-progress", "--verbose"],
        ["zoo", "list"],
        ["zoo", "info", "mnist_sparse_cnn2"],
        ["zoo", "check", "mnist_sparse_cnn2"],
        ["theory", "fig2", "--out", "docs/images/fig2.png"],
        ["theory", "fig3", "--trials", "10", "--seed", "1", "--dpi", "50", "--quiet"],
        ["export", "mnist_sparse_cnn2", "./serving"],
        ["export", "my_model.keras", "./serving", "--dataset", "gsc", "--version", "3"],
        ["flops", "gsc_sparse_cnn2", "--inputs", "gsc-sample"],
        [
            "flops",
            "mnist_sparse_cnn2",
            "--inputs",
            "mnist",
            "--k",
            "inference",
            "--format",
            "markdown",
        ],
    ):
        args = parser.parse_args(argv)
        assert callable(args.func), argv
    assert parser.parse_args(["--verbose", "zoo", "list"]).verbose is True
    # Packaging and publishing are maintainer tooling (python -m training.publish), not
    # commands of the installed package.
    for argv in (["zoo", "package", "--recipe", "r", "--seed", "0"], ["zoo", "publish", "m"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)


def test_defaults_match_the_library():
    from sparse_keras import robustness

    assert evaluate_cli.DEFAULT_NOISE_LEVELS == robustness.DEFAULT_NOISE_LEVELS
    assert evaluate_cli.ENGINES == robustness.engines.ENGINES
    parser = cli.build_parser()
    assert (
        parser.parse_args(["evaluate", "m"]).levels
        == "0,0.05,0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45,0.5"
    )


def test_usage_errors_exit_with_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["evaluate", "m", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert "expected a positive integer, got '0'" in capsys.readouterr().err
    assert cli.main([]) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "{tmp}/missing.keras"], "Model file '{tmp}/missing.keras' not found"),
        (["evaluate", "{tmp}"], "is a folder; expected a .keras file"),
        (["evaluate", "{tmp}/notes.txt"], "is a file but not a Keras model file"),
        (["evaluate", "m", "--levels", "0,x"], "--levels must be comma-separated numbers"),
        (["evaluate", "m", "--levels", "0,2"], "--levels must be in [0, 1]"),
        (["evaluate", "m", "--json", "{tmp}"], "--json path '{tmp}' is a directory"),
        (["evaluate", "m", "--plot", "{tmp}/no/such/fig.png"], "does not exist"),
        (["evaluate", "{tmp}/tiny.keras", "--dataset", "cifar"], "Unknown dataset 'cifar'"),
        (["evaluate", "mnist_nope"], "Unknown zoo model 'mnist_nope'"),
        (["evaluate", "gsc_sparse_cnn2"], "has no weights"),
        (["export", "{tmp}/missing.keras", "{tmp}/out"], "not found"),
        (["flops", "no_such_network"], "Unknown zoo model 'no_such_network'"),
        (["zoo", "info", "nope"], "Unknown zoo model 'nope'"),
    ],
)
def test_failures_are_one_line_with_exit_status_1(argv, message, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    if "--dataset" in argv:
        import keras

        keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()]).save(
            tmp_path / "tiny.keras"
        )
    argv = [part.format(tmp=tmp_path) for part in argv]
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    command = "zoo info" if argv[0] == "zoo" else argv[0]
    assert lines[0].startswith(f"sparse-keras {command}: error: ")
    assert message.format(tmp=tmp_path) in lines[0]


def test_verbose_keeps_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        cli.main(["evaluate", str(tmp_path / "missing.keras"), "--verbose"])


def test_main_leaves_the_callers_warning_settings_alone(tmp_path):
    import warnings

    before = (list(warnings.filters), warnings.showwarning)
    cli.main(["evaluate", str(tmp_path / "missing.keras")])
    assert (list(warnings.filters), warnings.showwarning) == before


def test_resolver_rules(tmp_path):
    import keras

    from sparse_keras import KWinners

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), KWinners(2)], name="t")
    model.save(tmp_path / "tiny.keras")
    resolved = resolve_model(tmp_path / "tiny.keras")
    assert (resolved.name, resolved.dataset, resolved.source) == ("tiny", None, "file")
    assert isinstance(resolved.model.layers[-1], KWinners)
    fresh = resolve_model("mnist_sparse_cnn1", networks=True, seed=3)
    assert fresh.source == "network" and fresh.dataset is None
    with pytest.raises(FileNotFoundError):
        resolve_model("runs/none.keras")
    with pytest.raises(ValueError, match="Unknown zoo model"):
        resolve_model("mnist_sparse_cnn1x")


def test_a_normal_evaluate_prints_no_tensorflow_log_line(tmp_path):
    """A fresh process, TF_CPP_MIN_LOG_LEVEL unset: the report on stdout, nothing on stderr."""
    import keras

    from sparse_keras import KWinners, _embedded

    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(16),
            KWinners(4),
            keras.layers.Dense(10),
        ],
        name="quiet",
    )
    model.save(tmp_path / "quiet.keras")
    out = _run_as_command(
        "evaluate",
        str(tmp_path / "quiet.keras"),
        "--data-dir",
        str(_embedded.MNIST_DIR),  # the shipped test set: no data folder, no network
        "--max-examples",
        "50",
        "--levels",
        "0,0.5",
        "--no-progress",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "noise score:" in out.stdout
    assert out.stderr == "", out.stderr[-3000:]


def test_python_dash_m_is_the_same_command():
    out = subprocess.run(
        [sys.executable, "-m", "sparse_keras.cli", "--help"],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        timeout=120,
    )
    assert out.returncode == 0 and "usage: sparse-keras" in out.stdout, out.stderr
    assert out.stderr == ""


def test_importing_the_package_still_registers_the_layers():
    """Only the command defers the layer imports; `import sparse_keras` registers them."""
    code = (
        "import sparse_keras, keras\n"
        "print(keras.saving.get_registered_object('sparse_keras>KWinners') is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env()
    )
    assert out.stdout.strip() == "True", out.stderr[-2000:]
