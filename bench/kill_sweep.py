"""Kill every stage of the flow with SIGKILL at random moments, re-run it, and check what is left.

    python bench/kill_sweep.py                 # 35 kill points, 7 per stage
    python bench/kill_sweep.py --points 2      # 2 per stage

For each stage (make_folds, cache build, train.py, blend.py, submit.py) on a small generated
data set: the stage's outputs are first made by an "old" run (other settings) and by a "new"
reference run; then, at each kill point, the old outputs are put back, the new run is started
and killed at a seeded random moment of its working time (after its imports), and
    - every output file must be byte-equal to the old one or to the new one (none half written;
      a killed run may leave neither);
    - a cache left on disk must open and hold its source images;
    - the re-run (train.py: --resume) must finish and write exactly the reference outputs;
      the submissions must validate.
tests/test_faults.py runs one kill point per stage (train.py's resume is tested in
tests/test_recipe.py with a real kill too)."""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
ENV = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
TRAIN = ["--dataset", "tiny", "--arch", "resnet18", "--img-size", "32", "--epochs", "3", "--batch-size", "8",
         "--deterministic", "--no-tensorboard", "--num-workers", "0"]
CACHE_BUILD = """
import sys
sys.path.insert(0, {src!r})
from cxr.data.cache import ImageSpec, build_cache
from cxr.data.layouts import read_dataset
train, test = read_dataset({root!r})
ids = list(train["image_id"]) + list(test["image_id"])
build_cache(ids[:{count}], {root!r}, "cache/tiny", ImageSpec(128), progress=False)
"""


@dataclass
class Stage:
    """A stage: its old and new commands (argument lists for python), the files they write
    (relative to the project), the re-run's extra arguments and a check of a killed state."""

    name: str
    old: list
    new: list
    outputs: list
    rerun_extra: list = field(default_factory=list)
    before_each: object = None  # callable(cwd): put the pre-kill state back beyond the outputs


def python(*args):
    return [sys.executable, *map(str, args)]


def script(name, *args):
    return python(SRC / name, *args)


def run(command, cwd):
    result = subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def snapshot(cwd, outputs):
    """{output: its bytes, or None where it does not exist}."""
    return {o: (cwd / o).read_bytes() if (cwd / o).is_file() else None for o in outputs}


def same(path, a, b):
    """Equal contents: bytes, or for an .npz its arrays (the zip members carry their write time)."""
    if a is None or b is None or not str(path).endswith(".npz"):
        return a == b
    import io

    with np.load(io.BytesIO(a)) as x, np.load(io.BytesIO(b)) as y:
        return x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files)


def restore(cwd, state):
    for output, data in state.items():
        path = cwd / output
        if data is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def kill_at(command, cwd, seconds):
    """Start `command`, SIGKILL it after `seconds`; True when it was killed (not finished before)."""
    process = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        process.wait(timeout=seconds)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def timed(command, cwd):
    start = time.perf_counter()
    run(command, cwd)
    return time.perf_counter() - start


def project(cwd, epochs=3):
    """A small generated Object-CXR-style data set with folds, one model trained on both folds
    (what blend.py and submit.py read), and the lists submit.py reads."""
    run(script("make_demo.py", "--out", "input/tiny", "--n-train", 40, "--n-dev", 6, "--min-size", 160,
               "--max-size", 256), cwd)
    run(script("make_folds.py", "--dataset", "tiny", "--n-folds", 2), cwd)
    for fold in (0, 1):
        run(script("train.py", *TRAIN, "--exp", "k", "--fold", fold, "--epochs", epochs), cwd)
    dev = sorted(p.name for p in (cwd / "input/tiny/dev").iterdir())
    (cwd / "few.csv").write_text("".join(f"input/tiny/dev/{name}\n" for name in dev[:2]))
    (cwd / "all.csv").write_text("".join(f"input/tiny/dev/{name}\n" for name in dev))
    return cwd


def stages(cwd):
    """The five stages, outputs named relative to the project."""
    blend_outputs = ["oof/k/blend_report.csv", "oof/k/oof_metrics.csv", "oof/k/froc_report.csv",
                     "submissions/k/prediction_classification.csv", "submissions/k/blend.json"]
    train_outputs = [f"oof/cut/resnet18/{name}" for name in ("fold_0.csv", "test_fold_0.csv", "cams_fold_0.npz")]
    n_images = len(list((cwd / "input/tiny/train").iterdir())) + len(list((cwd / "input/tiny/dev").iterdir()))

    def fresh_training(cwd):
        for folder in ("weights/cut", "oof/cut"):
            shutil.rmtree(cwd / folder, ignore_errors=True)

    def cache_build(count):
        return python("-c", CACHE_BUILD.format(src=str(SRC), root=str(cwd / "input/tiny"), count=count))

    return [
        Stage("make_folds", script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--seed", 1, "--overwrite"),
              script("make_folds.py", "--dataset", "tiny", "--n-folds", 2, "--seed", 42, "--overwrite"),
              ["folds/tiny.csv", "folds/tiny_duplicates.csv"]),
        Stage("cache", cache_build(n_images // 2), cache_build(n_images),
              ["cache/tiny/128_squash_linear/index.csv", "cache/tiny/128_squash_linear/images.npy"]),
        Stage("train.py", script("train.py", *TRAIN, "--exp", "cut", "--fold", 0, "--seed", 1),
              script("train.py", *TRAIN, "--exp", "cut", "--fold", 0), train_outputs, ["--resume"], fresh_training),
        Stage("blend.py", script("blend.py", "--exp", "k", "--dataset", "tiny", "--trials", 5, "--bootstrap", 30,
                                 "--froc-bootstrap", 10, "--seed", 1),
              script("blend.py", "--exp", "k", "--dataset", "tiny", "--trials", 5, "--bootstrap", 30,
                     "--froc-bootstrap", 10, "--seed", 2), blend_outputs),
        Stage("submit.py", script("submit.py", "few.csv", "out/cls.csv", "out/loc.csv", "--exp", "k"),
              script("submit.py", "all.csv", "out/cls.csv", "out/loc.csv", "--exp", "k"),
              ["out/cls.csv", "out/loc.csv"]),
    ]


def check_cache(cwd):
    """A cache on disk opens and every image it lists is its source's (None), or the problem."""
    sys.path.insert(0, str(SRC))
    from cxr.data.cache import ImageCache, ImageSpec, prepare_image

    folder = cwd / "cache/tiny/128_squash_linear"
    if not (folder / "index.csv").is_file():
        return None  # no index: the next build starts over
    cache = ImageCache(folder)
    for image_id in cache.index["image_id"]:
        if not np.array_equal(cache[image_id], prepare_image(cwd / "input/tiny" / image_id, ImageSpec(128))):
            return f"cache row {image_id} is not its source image"
    return None


def check_submission(cwd, listed):
    sys.path.insert(0, str(SRC))
    from cxr.formats.files import read_localization, validate_classification

    paths = (cwd / listed).read_text().split()
    validate_classification(cwd / "out/cls.csv", paths)
    read_localization(cwd / "out/loc.csv", paths)


def sweep(cwd, points_per_stage, seed=0, only=None, log=print, startup_share=None):
    """Kill each stage at `points_per_stage` seeded moments after its start-up (measured as the
    script's --help time, or `startup_share` of its run time); returns one dict per kill point."""
    rng = np.random.default_rng(seed)
    results = []
    for stage in stages(cwd):
        if only and stage.name not in only:
            continue
        if stage.before_each:
            stage.before_each(cwd)
        run(stage.old, cwd)
        old = snapshot(cwd, stage.outputs)
        if stage.before_each:
            stage.before_each(cwd)
        duration = timed(stage.new, cwd)
        new = snapshot(cwd, stage.outputs)
        if startup_share is None:
            startup = timed(stage.new[:2] + ["--help"] if stage.new[1] != "-c" else
                            python("-c", f"import sys; sys.path.insert(0, {str(SRC)!r}); import cxr.data.cache, cxr.data.layouts"), cwd)
            startup = min(startup, 0.8 * duration)  # a noisy machine: kill within the run all the same
        else:
            startup = startup_share * duration
        for point in range(points_per_stage):
            if stage.before_each:
                stage.before_each(cwd)
            restore(cwd, old)
            at = startup + rng.uniform(0, 1) * max(duration - startup, 0.1)
            killed = kill_at(stage.new, cwd, at)
            left = snapshot(cwd, stage.outputs)
            torn = [o for o in stage.outputs
                    if left[o] is not None and not same(o, left[o], old[o]) and not same(o, left[o], new[o])]
            problem = f"half-written: {', '.join(torn)}" if torn else (check_cache(cwd) if stage.name == "cache" else None)
            states = sorted({"absent" if left[o] is None else "old" if same(o, left[o], old[o]) else "new"
                             for o in stage.outputs})
            run(stage.new + stage.rerun_extra, cwd)
            again = snapshot(cwd, stage.outputs)
            differ = [o for o in stage.outputs if not same(o, again[o], new[o])]
            if problem is None and differ:
                problem = f"the re-run's outputs differ from the uninterrupted run's: {', '.join(differ)}"
            if problem is None and stage.name == "submit.py":
                check_submission(cwd, "all.csv")
            if problem is None and stage.name == "cache":
                problem = check_cache(cwd)
            results.append({"stage": stage.name, "at_s": round(at, 2), "of_s": round(duration, 2), "killed": killed,
                            "left": "+".join(states), "problem": problem or ""})
            log(f"{stage.name:<10} kill at {at:5.2f} s of {duration:5.2f} s: "
                f"{'killed' if killed else 'finished first'}, left {'+'.join(states)}; "
                f"{problem or 'the re-run finished with the reference outputs'}")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=0, help="kill points per stage (default: 7, 35 in all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", nargs="*", default=None, help="only these (make_folds cache train.py blend.py "
                                                                  "submit.py)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kill_sweep_") as folder:
        cwd = project(Path(folder))
        per_stage = args.points or 7
        start = time.time()
        results = sweep(cwd, per_stage, args.seed, args.stages)
    import pandas as pd

    table = pd.DataFrame(results)
    summary = table.groupby("stage", sort=False).agg(points=("at_s", "size"), killed=("killed", "sum"),
                                                     problems=("problem", lambda p: int((p != "").sum())))
    print(f"\n{summary.to_string()}\n{len(table)} kill points ({int(table['killed'].sum())} killed mid-run), "
          f"{int((table['problem'] != '').sum())} problems, {time.time() - start:.0f} s")
    return int((table["problem"] != "").any())


if __name__ == "__main__":
    sys.exit(main())
