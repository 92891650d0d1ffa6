"""Faults at any moment: one seeded SIGKILL per stage (make_folds, cache build, blend.py), then
a re-run; every output is the old file or the complete new one, and the re-run ends with the
uninterrupted run's outputs. The full sweep (35 kill points, train.py and submit.py included)
is `python bench/kill_sweep.py`; train.py's kill and resume is also tests/test_recipe.py's."""
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import kill_sweep  # noqa: E402


@pytest.mark.slow
def test_one_kill_per_stage_leaves_old_or_new_files_and_the_rerun_matches(tmp_path):
    cwd = kill_sweep.project(tmp_path, epochs=1)
    results = kill_sweep.sweep(cwd, points_per_stage=1, seed=3, only=["make_folds", "cache", "blend.py"],
                               startup_share=0.6)
    assert [r["stage"] for r in results] == ["make_folds", "cache", "blend.py"]
    assert [r["problem"] for r in results] == [""] * 3, results
