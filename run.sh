#!/usr/bin/env bash
# The whole flow: demo data (if missing) -> folds -> every arch x fold -> blend -> submission.
#
#   bash run.sh                                             # the demo, about 40 minutes on 2 CPU cores
#   DATASET=demo_multilabel bash run.sh                     # the multi-label demo (3 labels, Kaggle layout)
#   DATASET=objectcxr ARCHS="resnet101 densenet121" IMG_SIZE=512 EPOCHS=20 BATCH_SIZE=16 \
#       EXP=full bash run.sh --pretrained                   # a real run on a GPU
#   CONFIG=configs/pneumoniamnist.yaml bash run.sh          # an experiment file (src/experiment.py)
#
# Settings (environment variables): DATASET, EXP, ARCHS, FOLDS (which folds to train),
# N_FOLDS, IMG_SIZE, EPOCHS, BATCH_SIZE, LR, SEED, TRIALS, FORCE=1 or --force (retrain finished folds),
# LAYOUT, POSITIVE_CLASSES, LABEL_COLUMN, ID_COLUMN, GROUP_COLUMN, UNCERTAIN (how to read the data set and its
# uncertain labels: src/cxr/data/layouts.py),
# SKIP_BAD=1 (drop bad training rows, listed in reports/<dataset>/skipped_rows.csv, instead of stopping),
# GPUS="0 1 2 3" (run the architecture x fold jobs in parallel, one per listed GPU, a log per job in logs/<exp>/),
# TEST_LIKE (share of the training images most like the test side scored apart by blend.py; default 0.25),
# BN_ADAPT=1 (blend each model also with its BatchNorm statistics adapted to the test images: <model>-bn),
# FORMAT (auto | objectcxr | kaggle | multilabel | multiclass: the submission file, see src/cxr/formats/; auto, the
# default: kaggle, multilabel or multiclass when input/$DATASET has test.csv or sample_submission.csv, else objectcxr), BOOTSTRAP (resamples),
# METRIC (auc | log_loss | accuracy: what chooses each fold's best epoch and the blend; default: AUC, macro for classes),
# BLEND_ARGS (more src/blend.py flags, for example "--box-fusion maps").
# Map models (trained on the object outlines; the default when train.csv has an annotation column):
# MAP_ARCHS (encoders, default resnet18; "" for none), MAP_IMG_SIZE (default: the training images' median long
# side, up to MAP_MAX_SIZE=512), CROP_SIZE (160), MAP_EPOCHS (12), MAP_MIN_STEPS (600: a small set trains more epochs
# until its map models have 600 optimizer steps), MAP_BATCH_SIZE (16), MAP_ARGS (more train.py flags).
# DET_ARCHS (encoders of detectors, <arch>-det: FCOS on the encoder, trained with the map models' settings above;
# default none), DET_ARGS (more train.py flags for them only).
# SEEDS (1): train every model on every fold this many times (seeds SEED, SEED+1, ...), blended like folds.
# An annotated set trains map models only unless ARCHS names classifiers (measured: a classifier beside the map
# model never helped the blend on the demo, the semi-real or the full-size Object-CXR sets; docs/benchmarks.md).
# JOB="<model> <fold>" trains that one job of a prepared run and stops; PREPARE_ONLY=1 cuts the folds, runs
# the checks and prints the models (slurm/submit.sh uses both).
# Any arguments are passed on to every src/train.py call (for example --pretrained --amp bf16).
# CONFIG=FILE: these settings in lower case (archs as a list) and train.py's under train: / map_train:
# (see configs/); an environment variable wins over the file, an argument over its train: settings.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
CONFIG_TRAIN_ARGS=() CONFIG_MAP_ARGS=()
if [ -n "${CONFIG:-}" ]; then  # checked whole before anything runs: a wrong key or value stops here (exit 2)
    SETTINGS=$($PY src/experiment.py "$CONFIG")
    eval "$SETTINGS"
    sed -n 's/^# /== /p' <<< "$SETTINGS"  # the file's values an environment variable replaced
fi
DATASET=${DATASET:-demo}
EXP=${EXP:-$DATASET}
CROP_SIZE=${CROP_SIZE:-160}
MAP_EPOCHS=${MAP_EPOCHS:-12}
MAP_MIN_STEPS=${MAP_MIN_STEPS:-600}
SEEDS=${SEEDS:-1}
MAP_BATCH_SIZE=${MAP_BATCH_SIZE:-16}
N_FOLDS=${N_FOLDS:-5}
FOLDS=${FOLDS:-$(seq -s " " 0 $((N_FOLDS - 1)))}
IMG_SIZE=${IMG_SIZE:-96}
EPOCHS=${EPOCHS:-6}
BATCH_SIZE=${BATCH_SIZE:-32}
LR=${LR:-1e-3}
SEED=${SEED:-42}
TRIALS=${TRIALS:-100}
FORCE=${FORCE:-0}
TRAIN_ARGS=(${CONFIG_TRAIN_ARGS[@]+"${CONFIG_TRAIN_ARGS[@]}"})
for arg in "$@"; do  # --force is run.sh's own (retrain finished folds); the rest go to train.py
    if [ "$arg" = --force ]; then FORCE=1; else TRAIN_ARGS+=("$arg"); fi
done
DATA_ARGS=(--dataset "$DATASET" --layout "${LAYOUT:-auto}" --positive-classes "${POSITIVE_CLASSES:-}"
           --label-column "${LABEL_COLUMN:-}" --id-column "${ID_COLUMN:-}" --group-column "${GROUP_COLUMN:-}"
           --uncertain "${UNCERTAIN:-}")
if [ "${SKIP_BAD:-0}" = 1 ]; then DATA_ARGS+=(--skip-bad); fi

if [ -z "${JOB:-}" ]; then  # JOB="<model> <fold>": one job of a prepared run (a cluster's array task), nothing else
if [ "$DATASET" = demo ] && [ ! -f input/demo/train.csv ]; then
    $PY src/make_demo.py --out input/demo
fi
if [ "$DATASET" = demo_multilabel ] && [ ! -f input/demo_multilabel/train.csv ]; then
    $PY src/make_demo.py --multi-label --out input/demo_multilabel
fi
fi
# The default models follow the data: an annotated set (Object-CXR's outlines; RSNA's, VinBigData's boxes, SIIM's
# masks) gets a map model (ARCHS adds classifiers).
if [[ $($PY src/make_folds.py "${DATA_ARGS[@]}" --print-layout) == *" annotated" ]]; then
    ARCHS=${ARCHS-""}; MAP_ARCHS=${MAP_ARCHS-"resnet18"}
else
    ARCHS=${ARCHS-"resnet18 regnety_002"}; MAP_ARCHS=${MAP_ARCHS-""}
fi
FORMAT=${FORMAT:-auto}  # the data set's own: a Kaggle-style set (test.csv) gets a Kaggle submission
if [ -z "${JOB:-}" ]; then
$PY src/make_folds.py "${DATA_ARGS[@]}" --n-folds "$N_FOLDS" --seed "$SEED" --test-like "${TEST_LIKE:-0.25}"
# The submission format is checked against the data set before any training, not after it.
$PY src/blend.py --exp "$EXP" --dataset "$DATASET" --format "$FORMAT" --check-format
# The train/test shift (adversarial validation), once per data set with a test side: reports/<dataset>/shift.*
[ -f "reports/$DATASET/shift.json" ] || $PY src/shift.py "${DATA_ARGS[@]}" --share "${TEST_LIKE:-0.25}"
fi

DET_ARCHS=${DET_ARCHS:-}
if [ -n "$MAP_ARCHS$DET_ARCHS" ] && [ -z "${MAP_IMG_SIZE:-}" ]; then
    MAP_IMG_SIZE=$($PY src/make_folds.py "${DATA_ARGS[@]}" --print-map-size "${MAP_MAX_SIZE:-512}")
fi
MODELS=$ARCHS
for arch in $MAP_ARCHS; do MODELS="$MODELS $arch-map"; done
for arch in $DET_ARCHS; do MODELS="$MODELS $arch-det"; done

train_job() {  # one model (an arch, <arch>-map for a map model, <arch>-det for a detector) on one fold
    # --lr-batch: LR is meant for the default batches (32, map models 16); another BATCH_SIZE scales it
    local kind=(--img-size "$IMG_SIZE" --epochs "$EPOCHS" --batch-size "$BATCH_SIZE" --lr-batch 32) arch=$1
    if [[ $1 == *-map || $1 == *-det ]]; then
        arch=${1%-???}
        local own=map extra=()
        # shellcheck disable=SC2206
        if [[ $1 == *-det ]]; then own=detector extra=(${DET_ARGS:-}); fi
        # shellcheck disable=SC2206
        kind=(--kind "$own" --img-size "$MAP_IMG_SIZE" --resize letterbox --crop-size "$CROP_SIZE" --epochs "$MAP_EPOCHS"
              --min-steps "$MAP_MIN_STEPS" --batch-size "$MAP_BATCH_SIZE" --lr-batch 16 --val-every "$MAP_EPOCHS"
              ${CONFIG_MAP_ARGS[@]+"${CONFIG_MAP_ARGS[@]}"} ${MAP_ARGS:-} ${extra[@]+"${extra[@]}"})
    fi
    $PY src/train.py "${DATA_ARGS[@]}" --exp "$EXP" --arch "$arch" --fold "$2" "${kind[@]}" \
        --lr "$LR" --seed "$SEED" --seeds "$SEEDS" --metric "${METRIC:-auto}" ${TRAIN_ARGS[@]+"${TRAIN_ARGS[@]}"} "${@:3}"
}

if [ "${PREPARE_ONLY:-0}" = 1 ]; then  # folds, checks and settings only (slurm/submit.sh asks for the models)
    echo "== models: $MODELS"
    exit 0
fi
if [ -n "${JOB:-}" ]; then
    read -r model fold <<< "$JOB"
    if [ "$FORCE" != 1 ]; then train_job "$model" "$fold" --skip-done; else train_job "$model" "$fold"; fi
    exit 0
fi

start=$(date +%s)
JOBS=()
for arch in $MODELS; do
    for fold in $FOLDS; do
        if [ "$FORCE" != 1 ] && [ -f "oof/$EXP/$arch/fold_$fold.csv" ] && [ -f "oof/$EXP/$arch/test_fold_$fold.csv" ]; then
            train_job "$arch" "$fold" --skip-done  # "done already", or stops when it was trained with other settings
        else
            JOBS+=("$arch $fold")
        fi
    done
done

if [ -z "${GPUS:-}" ]; then  # one job after another, in this terminal
    for job in ${JOBS[@]+"${JOBS[@]}"}; do
        read -r arch fold <<< "$job"
        echo "== $arch fold $fold"
        train_job "$arch" "$fold"
    done
else  # a queue: one job at a time per listed GPU, each job logged; a failure does not stop the others
    LOGS="logs/$EXP"
    mkdir -p "$LOGS"
    QUEUE=$(mktemp -d)
    printf '%s\n' ${JOBS[@]+"${JOBS[@]}"} > "$QUEUE/jobs"
    echo 0 > "$QUEUE/next"
    for gpu in $GPUS; do
        (
            while true; do
                i=$(flock "$QUEUE/next" bash -c 'i=$(cat "$1"); echo $((i + 1)) > "$1"; echo "$i"' _ "$QUEUE/next")
                [ "$i" -lt "${#JOBS[@]}" ] || break
                read -r arch fold <<< "${JOBS[$i]}"
                log="$LOGS/${arch}_fold$fold.log"
                echo "== $arch fold $fold: started on GPU $gpu, log $log"
                if CUDA_VISIBLE_DEVICES=$gpu train_job "$arch" "$fold" > "$log" 2>&1; then
                    echo "== $arch fold $fold: done ($(grep -o 'OOF AUC [0-9.]*' "$log" | tail -1))"
                else
                    echo "== $arch fold $fold: FAILED on GPU $gpu (last line: $(tail -1 "$log"))"
                    echo "$arch fold $fold ($log)" >> "$QUEUE/failed"
                fi
            done
        ) &
    done
    wait
    if [ -s "$QUEUE/failed" ]; then
        echo "== failed jobs (the others finished; fix and re-run: finished folds are skipped):" >&2
        sed 's/^/   /' "$QUEUE/failed" >&2
        rm -rf "$QUEUE"
        exit 1
    fi
    rm -rf "$QUEUE"
fi
echo "== training took $(( $(date +%s) - start )) s"
# Each fold's OOF AUC side by side; a weak fold is named here, and blend.py leaves its model out of the test mean
$PY src/check_folds.py --exp "$EXP" --dataset "$DATASET" --models $MODELS
if [ "${BN_ADAPT:-0}" = 1 ]; then  # each model also as <model>-bn: BatchNorm statistics of the test images
    for model in $MODELS; do
        [ -f "oof/$EXP/$model-bn/test_fold_${FOLDS##* }.csv" ] && [ "$FORCE" != 1 ] || $PY src/adapt_bn.py --exp "$EXP" --model "$model"
        MODELS="$MODELS $model-bn"
    done
fi

$PY src/blend.py --exp "$EXP" --dataset "$DATASET" --models $MODELS --trials "$TRIALS" --seed "$SEED" \
    --format "$FORMAT" --bootstrap "${BOOTSTRAP:-1000}" --metric "${METRIC:-auto}" ${BLEND_ARGS:-}
