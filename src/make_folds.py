"""Cut the cross-validation folds of a data set once: folds/<dataset>.csv.

    python src/make_folds.py --dataset demo --n-folds 5 --seed 42

The file is frozen: every OOF file refers to it. An existing file with different folds is
never replaced unless --overwrite is given (and then old OOF files no longer match)."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pandas as pd  # noqa: E402

from artifacts import folds_file, write_csv  # noqa: E402
from data import assign_folds, check_images, read_dataset, read_folds  # noqa: E402
from errors import UserError, exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="demo", help="data set folder under --input-dir (default: demo)")
    parser.add_argument("--input-dir", default="input", help="where data sets live (default: input)")
    parser.add_argument("--folds-dir", default="folds", help="where fold files go (default: folds)")
    parser.add_argument("--n-folds", type=int, default=5, help="number of folds (default: 5)")
    parser.add_argument("--seed", type=int, default=42, help="shuffle seed (default: 42)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, different fold file")
    args = parser.parse_args(argv)

    root = Path(args.input_dir) / args.dataset
    train, _ = read_dataset(root)
    check_images(train, root)
    folds = assign_folds(train, args.n_folds, args.seed)
    path = folds_file(args.folds_dir, args.dataset)
    if path.exists():
        old = read_folds(path)
        if old.astype(str).equals(folds.astype(str)):
            print(f"{path} is up to date ({len(folds)} images, {args.n_folds} folds)")
            return
        if not args.overwrite:
            raise UserError(f"{path} exists with different folds; OOF files made with it would no longer match. "
                            f"Pass --overwrite to replace it (and retrain), or use another --folds-dir")
    write_csv(path, folds)
    summary = pd.crosstab(folds["fold"], folds["target"]).rename(columns={0: "negatives", 1: "positives"})
    print(f"wrote {path}: {len(folds)} images, {args.n_folds} folds\n{summary.to_string()}")


if __name__ == "__main__":
    main()
