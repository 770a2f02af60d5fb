"""bench_envs.py --adopt: a run recorded elsewhere counts only when its saved config holds
exactly the settings the command would train with; and the row's verdict on the reference."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_envs.py"
spec = importlib.util.spec_from_file_location("bench_envs", PATH)
bench_envs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_envs)

ENV = "Pendulum-v1"
BUDGET = bench_envs.BENCHMARKS[ENV][0]


def recorded_run(tmp_path, seed, **changes):
    """A results entry for (ENV, seed) whose run directory holds the config.json the preset
    gives, with `changes` applied to it."""
    run_dir = tmp_path / f"run-{seed}-{len(changes)}"
    run_dir.mkdir()
    config = bench_envs.expected_settings(ENV, seed, BUDGET, True, {})
    config.update(log_every=-1, checkpoint_every=10.0, preset=f"{ENV}/ppo", **changes)
    (run_dir / "config.json").write_text(json.dumps(config))
    return {"eval_mean": -150.0, "eval_deterministic_mean": -149.0, "budget": BUDGET,
            "steps_per_second": 1000.0, "run_dir": str(run_dir), "settings": "whatever"}


def test_adopt_takes_the_runs_with_the_presets_settings_and_no_other(tmp_path):
    other = {ENV: {"bare_env_steps_per_second": 5000.0, "seeds": {
        "0": recorded_run(tmp_path, 0),                          # the preset's settings
        "1": recorded_run(tmp_path, 1, learning_rate=5e-4),       # another learning rate
        "2": {**recorded_run(tmp_path, 2), "budget": BUDGET // 2},  # another budget
        "3": recorded_run(tmp_path, 3)}}}                         # a seed not asked for
    other[ENV]["seeds"]["4"] = recorded_run(tmp_path, 5)          # seed 5's run under "4"
    # A run saved before the `init` field existed trained with its value of today's default.
    older = recorded_run(tmp_path, 6)
    config_path = Path(older["run_dir"]) / "config.json"
    saved = json.loads(config_path.read_text())
    assert saved.pop("init") == "orthogonal"
    config_path.write_text(json.dumps(saved))
    other[ENV]["seeds"]["6"] = older
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    results = {}
    bench_envs.adopt(results, [str(path)], [ENV], [0, 1, 2, 4, 6], True, {}, None)
    assert sorted(results[ENV]["seeds"]) == ["0", "6"]
    record = results[ENV]["seeds"]["0"]
    assert record["settings"] == bench_envs.settings_of(ENV, True, {})
    assert results[ENV]["bare_env_steps_per_second"] == 5000.0
    # With that learning rate as --hp, seed 1's run is the one the command would make.
    results = {}
    bench_envs.adopt(results, [str(path)], [ENV], [0, 1], True, {"learning_rate": 5e-4}, None)
    assert sorted(results[ENV]["seeds"]) == ["1"]


def test_the_verdict_compares_the_deterministic_mean_of_seeds_0_to_2():
    assert bench_envs.verdict(-156.6, -172.2) == "beaten (-156.6 vs -172.2)"
    assert bench_envs.verdict(-85.0, -73.5) == "not beaten (-85.0 vs -73.5)"
    assert bench_envs.verdict(500.0, 500.0) == "tied (500.0)"
    assert bench_envs.verdict(float("nan"), 1.0) == "no seeds 0-2"
    results = {ENV: {"seeds": {str(s): {"eval_mean": m, "eval_deterministic_mean": d,
                                        "steps_per_second": 1.0, "budget": BUDGET}
                               for s, m, d in [(0, -150, -140), (1, -160, -150),
                                               (2, -170, -160), (7, -300, -400)]}}}
    (row,) = bench_envs.rows_of(results)
    assert row["deterministic_012"] == -150.0           # seed 7 is not in the reference's mean
    assert np.mean(row["deterministic"]) == -212.5
    assert row["met"] == 3 and row["beaten"] == "beaten (-150.0 vs -172.2)"


def test_a_worker_whose_parent_is_gone_stops_after_the_iteration_it_is_in(tmp_path, monkeypatch):
    """Killed by a signal, bench_envs.py cannot stop its pool's workers: each one checks after
    every iteration that the process that started it is still its parent, and stops if not
    (the run saved, nothing evaluated)."""
    parents = iter([1234] + [1234] * 2 + [1])     # the parent, 2 iterations, then init's pid
    monkeypatch.setattr(bench_envs.os, "getppid", lambda: next(parents, 1))
    with pytest.raises(SystemExit, match="bench_envs.py is gone; stopped at"):
        bench_envs.run_one("CartPole-v1", 0, str(tmp_path), True, {}, steps=50 * 512)
    progress = (tmp_path / "CartPole-v1-seed0" / "progress.csv").read_text().splitlines()
    assert len(progress) == 1 + 3                  # header + the iterations before it stopped
