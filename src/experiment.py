"""A whole experiment as one file: run.sh's settings (and train.py's) read, checked, printed as shell assignments.

    CONFIG=configs/pneumoniamnist.yaml bash run.sh        # run.sh evals what this prints
    python src/experiment.py configs/pneumoniamnist.yaml  # what it would set

Keys are run.sh's variables in lower case (dataset, exp, archs, map_archs and det_archs as lists, folds, img_size,
lr, trials, format, ...), plus `train:`, a mapping of train.py settings given to every train.py call
(pretrained: true, amp: bf16), and `map_train:`, the same for the map models and detectors alone (MAP_ARGS wins).
Every value is checked as the flag it becomes checks it, before anything runs, so a typo stops the
experiment with one line instead of hours later. An environment variable the user set wins over the
file, and flags after `run.sh` win over its train: settings.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cxr.config import Parser  # noqa: E402
from cxr.errors import exit_on_user_error  # noqa: E402
from cxr.run_file import assignments  # noqa: E402


@exit_on_user_error
def main(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("config", help="the experiment file (configs/*.yaml, or JSON)")
    args = parser.parse_args(argv)
    print("\n".join(assignments(args.config, os.environ)))


if __name__ == "__main__":
    main()
