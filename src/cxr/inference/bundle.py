"""A Kaggle code-competition package of an experiment: the inference code its entry point needs
(followed from the imports), the fold checkpoints its blend spec names, requirements pinned to the
versions the checkpoints recorded. src/package.py is the script; cxr/inference/notebook_entry.py is
the package's predict.py."""
import ast
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

from cxr.artifacts import spec_runs, write_json
from cxr.errors import UserError

SRC = Path(__file__).resolve().parents[2]  # src/: the folder that holds the cxr package
ENTRY = Path(__file__).resolve().parent / "notebook_entry.py"  # copied as DIR/predict.py
MANIFEST = "package.json"


def imports_of(path, lazy=True):
    """The dotted names every absolute import in a Python file may load: `from a.b import c` gives
    a.b and a.b.c (c may be a module or a name in a.b). `lazy`: those inside functions too (else
    only the imports that run when the file is imported)."""
    names = set()
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    for node in ast.walk(tree) if lazy else tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_files(dotted, src):
    """The files of `src` that importing `dotted` runs: each package's __init__.py on the way and
    the module itself ([] when the last part is a name, not a module)."""
    parts, files = dotted.split("."), []
    for depth in range(1, len(parts) + 1):
        folder = src.joinpath(*parts[:depth])
        if (folder / "__init__.py").is_file():
            files.append(folder / "__init__.py")
        elif folder.with_suffix(".py").is_file():
            files.append(folder.with_suffix(".py"))
        else:
            break
    return files


def code_closure(entry, src=SRC):
    """(the files of `src` that `entry` needs, following their imports, relative to `src`; the
    third-party packages they import), both sorted. Standard-library modules are neither."""
    needed, third_party, todo = set(), set(), [Path(entry)]
    while todo:
        for name in imports_of(todo.pop()):
            files = module_files(name, src)
            for file in files:
                if file not in needed:
                    needed.add(file)
                    todo.append(file)
            top = name.split(".")[0]
            if not files and not (src / top).is_dir() and top not in sys.stdlib_module_names:
                third_party.add(top)
    return sorted(f.relative_to(src).as_posix() for f in needed), sorted(third_party)


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
    for name in modules:
        (out / "lib" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SRC / name, out / "lib" / name)
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
