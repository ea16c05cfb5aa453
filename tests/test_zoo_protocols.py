"""Zoo metrics carry both reporting protocols' seed means (issue: match the released code)."""

import statistics

import pytest

from sparse_keras.zoo import artifacts


def _result(seed, paper, held_out):
    def entry(epoch, acc, score):
        return {
            "epoch": epoch,
            "selection": f"sel {epoch}",
            "clean_accuracy": acc,
            "noise_score": score,
        }

    return {
        "seed": seed,
        "clean_accuracy": held_out[1],
        "noise_score": held_out[2],
        "protocols": {"paper": entry(*paper), "held_out": entry(*held_out)},
    }


def test_protocol_summaries_use_population_and_sample_std():
    seeds = [
        _result(0, (3, 0.991, 103000), (9, 0.989, 102000)),
        _result(1, (5, 0.993, 104000), (9, 0.990, 101000)),
        _result(2, (2, 0.992, 102500), (9, 0.988, 100500)),
    ]
    summary = artifacts._protocol_summaries(seeds)
    paper, held_out = summary["paper"], summary["held_out"]
    assert paper["epochs"] == [3, 5, 2] and held_out["epochs"] == [9, 9, 9]
    assert paper["noise_score"]["mean"] == pytest.approx(103166.6667, rel=1e-9)
    assert paper["noise_score"]["std"] == pytest.approx(statistics.pstdev([103000, 104000, 102500]))
    assert held_out["clean_accuracy"]["std"] == pytest.approx(
        statistics.stdev([0.989, 0.990, 0.988])
    )
    assert (paper["std"], held_out["std"]) == ("population", "sample")


def test_older_result_files_have_no_protocol_summary():
    old = {"seed": 0, "clean_accuracy": 0.98, "noise_score": 1}
    assert artifacts._protocol_summaries([old]) is None
