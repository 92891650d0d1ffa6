"""Package an experiment for a Kaggle code competition: one self-contained folder to attach to an
offline notebook as a data set.

    python src/package.py --exp demo --out kaggle/demo
    python src/package.py --exp full --out kaggle/full --overwrite

Writes DIR/ with:
    predict.py         the entry point: `python DIR/predict.py IMAGES --out predictions.csv` (IMAGES a
                       folder or a header-less list of image paths), or in a notebook
                       `sys.path.insert(0, DIR); from predict import predict_paths` (see its --help)
    blend.json         the experiment's blend spec (submissions/<exp>/blend.json), its runs relative to itself
    weights/<model>/<run>/best.pt, config.json
                       every fold checkpoint the spec names
    lib/*.py           the inference code: src/inference.py and the modules it imports (followed from
                       predict.py's imports), nothing for training or blending
    requirements.txt   torch and timm as the checkpoints' config.json recorded them, and the other
                       packages lib/ imports
    package.json       what was packaged from where (it marks the folder as a package)
The package gives the probabilities src/predict.py gives, from any working directory, without
the repository. An existing non-empty DIR is refused; --overwrite replaces a folder this script
wrote before (one holding package.json), never any other."""
import ast
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parent
sys.path.insert(0, str(SRC))
from artifacts import WRITE_ERRNOS, cannot_write, current_umask, spec_runs, write_json  # noqa: E402
from config import Parser, add_settings  # noqa: E402
from errors import UserError, exit_on_user_error  # noqa: E402

ENTRY = SRC / "package_entry.py"  # copied as DIR/predict.py
MANIFEST = "package.json"


def imports_of(path):
    """The top-level names of every absolute import in a Python file (those inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(Path(path).read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def code_closure(entry, src=SRC):
    """(the modules of `src` that `entry` needs, following their imports; the third-party packages
    they import), both sorted. Standard-library modules are neither."""
    local = {p.stem for p in src.glob("*.py")}
    needed, third_party, todo = set(), set(), [Path(entry)]
    while todo:
        for name in imports_of(todo.pop()):
            if name in local and name not in needed:
                needed.add(name)
                todo.append(src / f"{name}.py")
            elif name not in local and name not in sys.stdlib_module_names:
                third_party.add(name)
    return sorted(needed), sorted(third_party)


def distribution(import_name):
    """The pip name of an importable package (cv2 -> opencv-python-headless), and its installed version."""
    from importlib import metadata

    names = metadata.packages_distributions().get(import_name, [import_name])
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return names[0], ""


def recorded_version(configs, key):
    """(the version of `key` (torch, timm) most fold runs recorded, one note on them) from their config.json."""
    counts = Counter(c[key] for c in configs if c.get(key))
    if not counts:
        return "", "not recorded in the runs' config.json"
    version = counts.most_common(1)[0][0]
    others = "" if len(counts) == 1 else " (runs disagree: " + ", ".join(f"{v} x{n}" for v, n in counts.items()) + ")"
    return version, f"trained with {version}{others}"


def requirements(third_party, configs):
    """requirements.txt: torch and timm pinned to the versions the checkpoints recorded, the other
    packages the inference code imports with the version this package was built with as a note."""
    lines = ["# The packages the inference code (lib/) imports. torch and timm: the versions the checkpoints",
             "# were trained with (their config.json); the others: the version this package was built with.",
             "# Kaggle's notebook images ship all of them; installing offline needs their wheels as a data set."]
    for name in ("torch", "timm"):
        version, note = recorded_version(configs, name)
        lines.append(f"{name}=={version.split('+')[0]}  # {note}" if version else f"{name}  # {note}")
    for name in third_party:
        if name in ("torch", "timm"):
            continue
        pip_name, version = distribution(name)
        lines.append(f"{pip_name}  # built with {version}" if version else pip_name)
    return "\n".join(lines) + "\n"


def read_spec(spec_path):
    """The blend spec at `spec_path`, with the fields a package needs."""
    if not spec_path.is_file():
        raise UserError(f"{spec_path}: no blend spec (run src/blend.py for this experiment first)")
    try:
        spec = json.loads(spec_path.read_text())
        spec_runs(spec, spec_path)
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{spec_path}: not a blend spec as blend.py writes it ({type(err).__name__}: {err})") from None
    return spec


def packaged_runs(spec, spec_path):
    """[(model name, source run folder, its folder in the package)], every checkpoint checked."""
    runs, missing = [], []
    for name, folders in spec_runs(spec, spec_path).items():
        for k, folder in enumerate(folders):
            missing += [str(folder / f) for f in ("best.pt", "config.json") if not (folder / f).is_file()]
            target = Path("weights") / name / folder.name
            if any(t == target for _, _, t in runs):
                target = Path("weights") / name / f"fold_{k}"
            runs.append((name, folder, target))
    if missing:
        raise UserError(f"{spec_path}: {len(missing)} checkpoint file(s) it names are missing: "
                        f"{', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    return runs


def check_out(out, overwrite):
    """Refuse an existing non-empty `out`, unless --overwrite and it is a package this script wrote."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: a file, not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise UserError(f"--out {out}: exists and is not empty (pass --overwrite to replace a package written before)")
    if not (out / MANIFEST).is_file():
        raise UserError(f"--out {out}: not a package written by package.py (no {MANIFEST}); not replacing it")


def build(spec, spec_path, runs, out):
    """Write the package into the empty folder `out`."""
    modules, third_party = code_closure(ENTRY)
    (out / "lib").mkdir()
    for name in modules:
        shutil.copy2(SRC / f"{name}.py", out / "lib" / f"{name}.py")
    shutil.copy2(ENTRY, out / "predict.py")
    configs, packaged = [], {}
    for name, source, target in runs:
        (out / target).mkdir(parents=True)
        for file in ("best.pt", "config.json"):
            shutil.copy2(source / file, out / target / file)
        configs.append(json.loads((source / "config.json").read_text()))
        packaged.setdefault(name, []).append(target.as_posix())
    write_json(out / "blend.json", {**spec, "runs": packaged, "runs_relative_to": "spec"})
    (out / "requirements.txt").write_text(requirements(third_party, configs))
    write_json(out / MANIFEST, {"exp": spec.get("exp", ""), "spec": str(spec_path), "runs": spec["runs"],
                                "lib": modules, "entry_point": "predict.py"})


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    add_settings(parser, "exp", exp="experiment whose blend spec (<submissions-dir>/<exp>/blend.json) to package")
    parser.add_argument("--out", metavar="DIR", required=True, help="the package folder to write (new or empty)")
    parser.add_argument("--submissions-dir", default="submissions", metavar="DIR", help="where blend specs are")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it holds a package written before")
    args = parser.parse_args(argv)

    spec_path = Path(args.submissions_dir) / args.exp / "blend.json"
    spec = read_spec(spec_path)
    runs = packaged_runs(spec, spec_path)
    out = Path(args.out)
    check_out(out, args.overwrite)
    target = out.resolve()
    with cannot_write(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:  # built beside DIR, then renamed onto it: a failed build leaves DIR as it was
        with cannot_write(target, only=WRITE_ERRNOS):
            build(spec, spec_path, runs, staging)
        with cannot_write(target):
            os.chmod(staging, 0o777 & ~current_umask())
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = [p for p in target.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {out}/: {len(files)} files, {size / 2**20:.1f} MiB ({len(runs)} fold checkpoints of "
          f"{len(spec['models'])} model(s)); run it as python {out}/predict.py IMAGES --out predictions.csv")


if __name__ == "__main__":
    main()
