"""Cut the cross-validation folds of a data set once: folds/<dataset>.csv.

    python src/make_folds.py --dataset demo --n-folds 5 --seed 42
    python src/make_folds.py --dataset pneumonia_folder --positive-classes BacterialPneumonia,ViralPneumonia

Exact and near-duplicate images (train and test) are found first and share a group, so a
pair never straddles training and validation; the pairs are written to
folds/<dataset>_duplicates.csv. Images of one patient (or study: a Patient ID, PatientID,
StudyInstanceUID, ... column, or --group-column; for DICOM files without one, their PatientID
tags) share a group too; the line "folds grouped by" says what grouped the rows. The file is
frozen: every OOF file refers to it. An existing file with different folds is never replaced
unless --overwrite is given (and then old OOF files no longer match)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.artifacts import duplicates_file, folds_file, write_csv  # noqa: E402
from cxr.config import FoldSettings, parse_config  # noqa: E402
from cxr.errors import UserError, exit_on_user_error  # noqa: E402

# pandas and the modules that read images are imported after the flags are parsed: --help is instant.


def map_image_size(long_sides, largest):
    """The stored resolution, at most `largest`: the median long side rounded up to a multiple of 32."""
    return int(min(largest, -(-int(long_sides.median()) // 32) * 32))


@exit_on_user_error
def main(argv=None):
    args = parse_config(argv, FoldSettings, description=__doc__)
    import pandas as pd

    from cxr.data.dedup import group_duplicates
    from cxr.data.folds import assign_folds, join_patients, read_folds
    from cxr.testside.adversarial import mark_test_like
    from cxr.data.labels import label_name, target_columns, task_of
    from cxr.data.layouts import annotated, read_checked, resolved_layout

    if args.print_layout:  # run.sh: an annotated set's default models are map models
        layout = resolved_layout(Path(args.input_dir) / args.dataset, args.layout)
        print(layout, "annotated" if annotated(Path(args.input_dir) / args.dataset, layout) else "plain")
        return
    train, test, root = read_checked(args)
    if args.print_map_size:
        print(map_image_size(train[["width", "height"]].max(axis=1), args.print_map_size))
        return
    path = folds_file(args.folds_dir, args.dataset)
    report = None
    if args.dedup:
        train, report = group_duplicates(train, test, root, args.near_threshold)
    train, grouping = join_patients(train, root if args.group_column != "none" else None)
    print(grouping)
    folds = assign_folds(train, args.n_folds, args.seed)
    up_to_date = path.exists() and read_folds(path).astype(str).equals(folds.astype(str))
    if path.exists() and not up_to_date and not args.overwrite:  # checked before anything is written
        raise UserError(f"{path} exists with different folds; OOF files made with it would no longer match. "
                        f"Pass --overwrite to replace it (and retrain), or use another --folds-dir")
    if report is not None:
        write_csv(duplicates_file(args.folds_dir, args.dataset), report)
        print(f"duplicate pairs: {duplicates_file(args.folds_dir, args.dataset)}")
    if args.test_like:
        mark_test_like(args, train, test, root)
    if up_to_date:
        print(f"{path} is up to date ({len(folds)} images, {args.n_folds} folds)")
        return
    write_csv(path, folds)
    columns = target_columns(folds)
    if columns == ["target"]:
        summary = pd.crosstab(folds["fold"], folds["target"]).rename(columns={0: "negatives", 1: "positives"})
    else:
        summary = folds.groupby("fold")[columns].sum().rename(columns=label_name).assign(images=folds["fold"].value_counts())
        summary.columns.name = "images per class" if task_of(folds) == "multiclass" else "positives per label"
    print(f"wrote {path}: {len(folds)} images, {args.n_folds} folds\n{summary.to_string()}")


if __name__ == "__main__":
    main()
