#!/usr/bin/env bash
# The Object-CXR benchmark: the whole flow on an annotated set in the challenge's layout, from
# scratch on 2 CPU cores, train -> dev as the (labelled) test side, within 40 minutes.
#
#   bash bench/objectcxr.sh                       # ../shared/data/objectcxr_semireal
#   SOURCE=/data/object-cxr bash bench/objectcxr.sh   # any folder in the Object-CXR layout
#
# 3 folds -> a map model (resnet18 encoder + FPN, trained on 160 px crops of the images at their
# stored resolution, 14 epochs) and the best classifier of before (resnet18 at 128 px, max
# pooling, 4 epochs) on every fold -> blend -> submissions/<exp>/prediction_classification.csv.
# Prints, for each model and the blend: OOF and dev AUC (DeLong 95 % interval), OOF and dev FROC
# (bootstrap 95 % interval) with the sensitivity at each FROC threshold, seconds per epoch and
# per image at inference. The log is kept in reports/<exp>.log. Settings can be overridden as
# for run.sh (N_FOLDS, MAP_EPOCHS, CROP_SIZE, MAP_IMG_SIZE, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=${SOURCE:-../shared/data/objectcxr_semireal}
export DATASET=${DATASET:-$(basename "$SOURCE")}
source bench/link_data.sh
link_data "$DATASET" "$SOURCE" "a data set in the Object-CXR layout" train.csv

export EXP=${EXP:-${DATASET}_bench} FORMAT=objectcxr N_FOLDS=${N_FOLDS:-3}
export ARCHS=${ARCHS-resnet18} IMG_SIZE=${IMG_SIZE:-128} EPOCHS=${EPOCHS:-4} BATCH_SIZE=${BATCH_SIZE:-32}
export MAP_ARCHS=${MAP_ARCHS-resnet18} MAP_EPOCHS=${MAP_EPOCHS:-14} CROP_SIZE=${CROP_SIZE:-160} LR=${LR:-2e-3}
export MAP_ARGS=${MAP_ARGS:-} TRIALS=${TRIALS:-100} TQDM_DISABLE=1

start=$(date +%s)
bash run.sh --pool max "$@" 2>&1 | tee "reports/$EXP.log"
python3 bench/timing.py --exp "$EXP" 2>&1 | tee -a "reports/$EXP.log"
echo "== benchmark took $(( $(date +%s) - start )) s in all" | tee -a "reports/$EXP.log"
