#!/usr/bin/env bash
# A box or mask competition as shipped, end to end: the semi-real radiographs and their objects in
# RSNA Pneumonia's, SIIM-ACR's (or VinBigData's) exact layout, run.sh's defaults on it, the
# submission scored on the held-back truth beside the sample submission; on 2 CPU cores.
#
#   bash bench/competitions.sh rsna        # input/rsna_semireal made once (DICOMs, the competition's CSVs)
#   bash bench/competitions.sh siim
#   N_FOLDS=5 bash bench/competitions.sh rsna    # settings as for run.sh
#
# The layout is written by ../shared/tools/make_challenge_layouts.py from ../shared/data/objectcxr_semireal
# (train -> the training side, dev -> the unlabelled test side; the truth beside the folder as
# input/<layout>_semireal_test_truth.csv, never inside it). Then run.sh with its defaults for an
# annotated set (the map model, a map per class for VinBigData; here 3 folds) -> blend -> the boxes or masks from the
# blended object maps, post-processing chosen on OOF by the competition's metric (nested estimate
# printed) -> submissions/<exp>/submission.csv, scored by src/score.py with a bootstrap interval,
# beside the sample submission's score. The log is kept in reports/<exp>.log.
set -euo pipefail
cd "$(dirname "$0")/.."

LAYOUT=${1:?usage: bash bench/competitions.sh rsna|siim|vinbig}
SOURCE=${SOURCE:-../shared/data/objectcxr_semireal}
TOOL=${TOOL:-../shared/tools/make_challenge_layouts.py}
export DATASET=${DATASET:-${LAYOUT}_semireal}
if [ ! -d "input/$DATASET" ]; then
    for needed in "$SOURCE/train.csv" "$TOOL"; do
        if [ ! -e "$needed" ]; then echo "error: $needed not found (SOURCE=<an Object-CXR-layout set>, TOOL=<make_challenge_layouts.py>)" >&2; exit 2; fi
    done
    mkdir -p input
    python3 "$TOOL" "$SOURCE" "input/$DATASET" --layout "$LAYOUT"
fi
case $LAYOUT in
    rsna|siim) SAMPLE=stage_2_sample_submission.csv ;;
    *) SAMPLE=sample_submission.csv ;;
esac
export EXP=${EXP:-${DATASET}_bench} N_FOLDS=${N_FOLDS:-3} TQDM_DISABLE=1
mkdir -p reports

start=$(date +%s)
bash run.sh "${@:2}" 2>&1 | tee "reports/$EXP.log"
{
    echo "== the submission:"
    python3 src/score.py "submissions/$EXP/submission.csv" "input/${DATASET}_test_truth.csv"
    echo "== the sample submission, for scale:"
    python3 src/score.py "input/$DATASET/$SAMPLE" "input/${DATASET}_test_truth.csv"
    echo "== benchmark took $(( $(date +%s) - start )) s in all"
} 2>&1 | tee -a "reports/$EXP.log"
