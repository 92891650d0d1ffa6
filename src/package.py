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
    lib/cxr/...        the inference code: src/cxr/inference/ensemble.py and the modules it imports
                       (followed from predict.py's imports), nothing for training or blending
    requirements.txt   torch and timm as the checkpoints' config.json recorded them, and the other
                       packages lib/ imports
    package.json       what was packaged from where (it marks the folder as a package)
The package gives the probabilities src/predict.py gives, from any working directory, without
the repository. An existing non-empty DIR is refused; --overwrite replaces a folder this script
wrote before (one holding package.json), never any other."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import WRITE_ERRNOS, cannot_write, current_umask  # noqa: E402
from cxr.config import Parser, add_settings  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402
from cxr.inference.bundle import build, check_out, packaged_runs, read_spec  # noqa: E402


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
