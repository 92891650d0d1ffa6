"""The final models' data set: training images and the labelled dev side together.

    python src/final_set.py --dataset objectcxr          # writes input/objectcxr_final/
    DATASET=objectcxr_final EXP=final bash run.sh        # the same recipe on every labelled image
    python src/submit.py image_path.csv cls.csv loc.csv --exp final

On Object-CXR the 1,000 labelled dev images are a true hold-out for the fold models: report the
dev score from a run on input/objectcxr first (`bash run.sh`), then train the submitted models on
train and dev together with the same settings. input/<dataset>_final/ holds train.csv (the
training rows, then the dev rows named ../dev/<name>) and links to the original train/ and dev/
folders: nothing is copied. It has no test side: blend.py learns its weights on the OOF rows of
every labelled image and writes blend.json (no submission file); submit.py applies it to the
evaluation server's images."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.config import Parser  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--dataset", required=True, help="a data set under --input-dir with a labelled dev.csv")
    parser.add_argument("--input-dir", default="input")
    parser.add_argument("--out", default="", help="the new data set's name (default <dataset>_final)")
    args = parser.parse_args(argv)
    from cxr.data.final_set import write_final_set

    name = args.out or f"{args.dataset}_final"
    n_train, n_dev = write_final_set(Path(args.input_dir) / args.dataset, Path(args.input_dir) / name)
    print(f"wrote {Path(args.input_dir) / name}/train.csv: {n_train} training and {n_dev} dev images "
          f"(train/ and dev/ linked); next: DATASET={name} EXP=final bash run.sh")


if __name__ == "__main__":
    main()
