#!/usr/bin/env bash
# The train/test shift benchmark (PneumoniaMNIST): each lever that uses the unlabelled test side,
# measured on its own on the test-like OOF estimate, within 60 minutes on 2 CPU cores.
#
#   bash bench/shift.sh                      # SOURCE=<a PneumoniaMNIST folder> (default ../shared/data/pneumoniamnist)
#
# One experiment ($EXP, default pmnist_shift), resnet18 x 5 folds, 8 epochs, EMA, the last epoch's
# weights (--select last: no weights chosen on the OOF rows), hflip TTA:
#   resnet18         the baseline: 32 px, basic augmentation
#   resnet18-aug     --aug shift (random resized crops, gamma, CLAHE, blur/sharpen) --mixup 0.2
#   resnet18-64px    resolution: the 28 px images upsampled to 64 px instead of 32
#   resnet18-pseudo  second round: the baseline plus the test images the first round's three models
#                    are sure of (src/pseudo.py, fold-safe; the surest half of each predicted class)
#   <each>-bn        BatchNorm statistics adapted to the test images (src/adapt_bn.py)
# The shift itself (src/shift.py), then blend.py --choose-by test_like: OOF AUC per model and blend on
# all rows and on the test-like quarter, and the prior-shift estimate; the blend it chooses (over
# every model above) is the submission of the best combination. Log: reports/$EXP.log.
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/link_data.sh
link_data pneumoniamnist "${SOURCE:-../shared/data/pneumoniamnist}" \
    "a folder with PneumoniaMNIST: Kaggle-style train.csv + test.csv, or pneumoniamnist.npz"
EXP=${EXP:-pmnist_shift}
PY=${PYTHON:-python3}
export TQDM_DISABLE=1
COMMON=(--dataset pneumoniamnist --exp "$EXP" --arch resnet18 --epochs "${EPOCHS:-8}" --batch-size 64 --lr 2e-3
        --ema --select last --val-every "${EPOCHS:-8}" --tta hflip --heatmaps off --no-tensorboard)

train_folds() {  # a model name, then its train.py flags
    local name=$1; shift
    for fold in 0 1 2 3 4; do
        [ -f "oof/$EXP/$name/test_fold_$fold.csv" ] || $PY src/train.py "${COMMON[@]}" --name "$name" --fold "$fold" "$@" | grep summary
    done
}

{
start=$(date +%s)
$PY src/make_folds.py --dataset pneumoniamnist --test-like 0.25
$PY src/shift.py --dataset pneumoniamnist --share 0.25
train_folds resnet18 --img-size 32
train_folds resnet18-aug --img-size 32 --aug shift --mixup 0.2
train_folds resnet18-64px --img-size 64
$PY src/pseudo.py --exp "$EXP" --models resnet18 resnet18-aug resnet18-64px --share 0.5 --min-confidence 0.9
train_folds resnet18-pseudo --img-size 32 --pseudo-labels "oof/$EXP/pseudo_labels.csv"
for name in resnet18 resnet18-aug resnet18-64px resnet18-pseudo; do
    [ -f "oof/$EXP/$name-bn/test_fold_4.csv" ] || $PY src/adapt_bn.py --exp "$EXP" --model "$name"
done
FORMAT=objectcxr; [ -f input/pneumoniamnist/test.csv ] && FORMAT=kaggle
$PY src/blend.py --exp "$EXP" --dataset pneumoniamnist --format "$FORMAT" --choose-by test_like --trials "${TRIALS:-100}"
echo "== benchmark took $(( $(date +%s) - start )) s in all"
} 2>&1 | tee "reports/$EXP.log"
