#!/usr/bin/env bash
# The multi-class benchmark: real radiographs in four classes as a Kaggle multi-class challenge, the
# default flow (run.sh as a user runs it), the submission scored on the held-back truth; within 30
# minutes on 2 CPU cores.
#
#   bash bench/multiclass.sh                          # ../shared/data/cxr_pneumonia_folder -> input/cxr4
#   SOURCE=/data/my_imagefolder DATASET=mine bash bench/multiclass.sh
#
# input/cxr4 is made once by ../shared/tools/make_kaggle_multiclass.py from the ImageFolder SOURCE
# (ids without extension, train.csv id,label with class names, sample_submission.csv only; the
# test side's classes in input/cxr4_test_truth.csv, outside the data set). Then run.sh's defaults
# (5 folds, resnet18 and regnety_002 at 96 px, 6 epochs, softmax cross-entropy) -> blend (one
# method for every class, chosen by nested macro AUC) -> submissions/<exp>/submission.csv, scored
# by src/score.py: macro AUC, accuracy, log loss with bootstrap 95 % intervals, and per class.
# The log is kept in reports/<exp>.log. Settings can be overridden as for run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=${SOURCE:-../shared/data/cxr_pneumonia_folder}
export DATASET=${DATASET:-cxr4}
TOOL=${TOOL:-../shared/tools/make_kaggle_multiclass.py}
if [ ! -f "input/$DATASET/train.csv" ]; then
    for needed in "$SOURCE" "$TOOL"; do
        if [ ! -e "$needed" ]; then echo "error: $needed not found (SOURCE=<an ImageFolder>, TOOL=<make_kaggle_multiclass.py>)" >&2; exit 2; fi
    done
    mkdir -p input reports
    python3 "$TOOL" "$SOURCE" "input/$DATASET"
fi
export EXP=${EXP:-${DATASET}_bench} TQDM_DISABLE=1
mkdir -p reports

start=$(date +%s)
bash run.sh "$@" 2>&1 | tee "reports/$EXP.log"
python3 src/score.py "submissions/$EXP/submission.csv" "input/${DATASET}_test_truth.csv" 2>&1 | tee -a "reports/$EXP.log"
echo "== benchmark took $(( $(date +%s) - start )) s in all" | tee -a "reports/$EXP.log"
