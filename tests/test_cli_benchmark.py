"""End-to-end tests of ``hadasklearn benchmark`` on a tiny preset with a tiny network."""

import json
import os

import pandas as pd
import pytest

from hadasklearn import study
from hadasklearn.cli import build_parser, main

pytest.importorskip("torch")

TIMING = ("fit_seconds", "predict_ms_per_video")
# bbc: 20 videos of 20 subjects; 2 folds, one fusion and two baselines keep this under a minute.
ARGS = ["benchmark", "--dataset", "bbc", "--cv", "2", "--fusions", "hadamard",
        "--baselines", "dmarker_svm,multitask", "--device", "cpu", "--seed", "3", "--n-jobs", "1"]
TINY = {
    "dim": 8,
    "clip_length": 4,
    "n_test_clips": 1,
    "max_epochs": 1,
    "early_stopping": False,
    "backbone_kwargs": {"embed_dim": 4, "n_tokens": 2, "depth": 1, "temporal_depth": 1, "num_heads": 2},
}


@pytest.fixture
def tiny_profile(monkeypatch):
    monkeypatch.setitem(study.PROFILES, "quick", {**study.PROFILES["quick"], **TINY})


def _table(path, name):
    frame = pd.read_csv(path / name)
    return frame.drop(columns=[c for c in frame.columns if c.startswith(TIMING)])


def test_benchmark_end_to_end_and_resume(tmp_path, tiny_profile, monkeypatch, capsys):
    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    assert main(ARGS + ["--out", str(fresh)]) == 0
    out, err = capsys.readouterr()
    assert "| method | accuracy |" in out and "**hadamard**" in out
    assert "6 units run, 0 reused" in err

    for name in ("folds.csv", "predictions.csv", "summary.csv", "summary.md", "significance.csv",
                 "folds.png", "run.json"):
        assert (fresh / name).stat().st_size > 0, name
    folds = pd.read_csv(fresh / "folds.csv")
    assert sorted(set(folds["method"])) == ["dmarker_svm", "hadamard", "multitask"]
    assert len(folds) == 6 and (folds["n_train"] + folds["n_test"] == 20).all()
    neural = folds[folds.method != "dmarker_svm"]
    assert (neural["n_params"] > 0).all()
    significance = pd.read_csv(fresh / "significance.csv")
    assert set(significance["method"]) == {"dmarker_svm", "multitask"}
    info = json.loads((fresh / "run.json").read_text())
    assert info["arguments"]["dataset"] == "bbc" and info["seed"] == 3
    assert info["profile"]["name"] == "quick" and info["profile"]["max_epochs"] == 1
    assert info["subsampled"] == "no" and info["context"]["dataset"] == "bbc"

    # Interrupt a second run after three units (as Ctrl-C would), then resume it.
    real_run_unit, calls = study._run_unit, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_run_unit(*args, **kwargs)

    monkeypatch.setattr(study, "_run_unit", interrupted)
    assert main(ARGS + ["--out", str(resumed), "--quiet"]) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    assert len(os.listdir(resumed / "units")) == 3
    assert not (resumed / "folds.csv").exists()
    monkeypatch.setattr(study, "_run_unit", real_run_unit)

    assert main(ARGS + ["--out", str(resumed), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # --quiet
    assert json.loads((resumed / "run.json").read_text())["units_reused"] == 3
    for name in ("folds.csv", "predictions.csv", "summary.csv", "significance.csv"):
        pd.testing.assert_frame_equal(_table(fresh, name), _table(resumed, name))


def test_benchmark_refuses_to_mix_settings_in_one_folder(tmp_path, tiny_profile, capsys):
    args = ["benchmark", "--dataset", "bbc", "--cv", "2", "--fusions", "hadamard", "--baselines",
            "dmarker_svm", "--quiet", "--out", str(tmp_path), "--max-videos", "12", "--n-jobs", "1"]
    assert main(args) == 0
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["subsampled"].startswith("yes: --max-videos 12 kept 12 of 20")
    assert info["n_items"] == 12
    assert main([*args, "--seed", "9"]) == 2
    assert "different seed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dataset", "nowhere"], "neither a synthetic preset"),
        (["--fusions", "hadamrd"], "Did you mean 'hadamard'"),
        (["--baselines", "svm"], "Unknown baseline"),
        (["--scheduler", "tcp://localhost:1"], "--scheduler needs --backend dask"),
    ],
)
def test_benchmark_usage_errors(tmp_path, extra, message, capsys):
    assert main(["benchmark", "--out", str(tmp_path), "--quiet", *extra]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--cv", "1"], ["--seed", "-1"], ["--profile", "slow"], ["--max-videos", "x"]])
def test_benchmark_rejects_bad_option_values(bad, capsys):
    with pytest.raises(SystemExit) as info:
        main(["benchmark", *bad])
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_benchmark_help_lists_the_options():
    text = build_parser()._subparsers._group_actions[0].choices["benchmark"].format_help()
    for option in ("--dataset", "--fusions", "--baselines", "--cv", "--profile", "--device", "--n-jobs",
                   "--backend", "--scheduler", "--out", "--seed", "--quiet", "--max-videos"):
        assert option in text
