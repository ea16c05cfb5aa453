"""Committed results of long runs agree with themselves and with the tables built from them."""

import json
import pathlib

import pytest

from training import aggregate

RESULTS = pathlib.Path(__file__).resolve().parents[1] / "training" / "results"
RESULT_FILES = sorted(RESULTS.glob("*/seed*.json"))
# gsc12v2: the keyword and unknown clips of the speaker-disjoint test split (no silence).
FULL_TEST_SIZE = {"mnist": 10000, "fsdd": 300, "gsc": 2552, "gsc12v2": 848}


@pytest.mark.parametrize("path", RESULT_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_result_file_is_self_consistent(path):
    result = json.loads(path.read_text())
    noise = result["noise"]
    assert result["recipe"] == path.parent.name and f"seed{result['seed']}.json" == path.name
    assert noise["test_size"] == FULL_TEST_SIZE[result["dataset"]]
    assert noise["noise_levels"] == pytest.approx([i / 20 for i in range(11)])
    assert noise["max_score"] == 11 * noise["test_size"]
    assert result["noise_score"] == noise["noise_score"] == sum(noise["correct"])
    assert result["clean_accuracy"] == pytest.approx(noise["correct"][0] / noise["test_size"])
    assert len(result["history"]) == result["epochs"]
    assert result["command"].startswith("python -m training.")
    if "protocols" not in result:
        return  # made before the runner tested after every epoch (FSDD, pruning)
    assert result["git_commit"]
    history = result["history"]
    for protocol in result["protocols"].values():
        entry = history[protocol["epoch"]]
        assert protocol["noise"]["correct"] == entry["noise_correct"]
        assert protocol["noise_score"] == entry["noise_score"] == sum(entry["noise_correct"])
        assert protocol["clean_accuracy"] == pytest.approx(
            entry["noise_correct"][0] / noise["test_size"]
        )
    tests = [h["test_accuracy"] for h in history]
    assert result["protocols"]["paper"]["epoch"] == tests.index(max(tests))
    held_out = result["protocols"]["held_out"]
    assert (held_out["epoch"], held_out["noise_score"]) == (
        result["selected_epoch"],
        result["noise_score"],
    )
    if result["dataset"] == "mnist":
        assert held_out["epoch"] == result["epochs"] - 1


@pytest.mark.parametrize(
    "table, build",
    [
        ("table1.md", aggregate.table1_markdown),
        ("fsdd_table.md", aggregate.fsdd_markdown),
        ("gsc12v2_table.md", aggregate.gsc12v2_markdown),
    ],
)
def test_committed_tables_match_the_result_files(table, build):
    path = RESULTS / table
    if not path.exists():
        pytest.skip(f"{table} not generated yet")
    assert path.read_text() == build(RESULTS), (
        f"regenerate with: python -m training.aggregate {table.split('.')[0].replace('_table', '')}"
    )


def test_audio_facts_table_matches_its_json():
    import json as _json

    from training import audio_facts

    facts = _json.loads((RESULTS / "audio_facts.json").read_text())
    assert (RESULTS / "audio_facts.md").read_text() == audio_facts.facts_markdown(facts)
    assert facts["fsdd"]["clips"] == 300 and facts["fsdd"]["sample_rates_hz"] == [8000]
    assert facts["gsc12v2"]["clips"] == 848 and facts["gsc12v2"]["sample_rates_hz"] == [16000]


def test_clip_facts_by_hand():
    import math

    import numpy as np

    from training import audio_facts

    # A 1 kHz sine of amplitude 0.5 at 16 kHz: RMS 0.5/sqrt(2), no power above 4 kHz;
    # a 6 kHz one: all of it above.
    t = np.arange(16000) / 16000
    low = audio_facts.clip_facts((0.5 * np.sin(2 * math.pi * 1000 * t)).astype("float32"), 16000)
    assert low["rms"] == pytest.approx(0.5 / math.sqrt(2), rel=1e-4)
    assert low["loudest_window_rms"] == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert low["power_above_4khz"] < 1e-6
    high = audio_facts.clip_facts((0.5 * np.sin(2 * math.pi * 6000 * t)).astype("float32"), 16000)
    assert high["power_above_4khz"] > 0.999
