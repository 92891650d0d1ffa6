#!/usr/bin/env bash
# The Object-CXR benchmark on full-size films: the same flow as bench/objectcxr.sh (3 folds, map
# model + classifier, blend, dev as the labelled test side) on the full-size proxy, 2400x1800 px
# films with the objects drawn at film resolution, beside the 400x300 set's run.
#
#   bash bench/objectcxr_fullsize.sh                     # writes input/objectcxr_fullsize once (~600 MB)
#   SOURCE=/data/object-cxr bash bench/objectcxr_fullsize.sh   # the challenge's own films
#   MAP_IMG_SIZE=768 EXP=fullsize_768 bash bench/objectcxr_fullsize.sh   # a resolution of the study
#
# The proxy comes from ../shared/tools/make_semireal_objectcxr.py (--upscale-to 2400 --grain 3)
# and is never committed. Prints what bench/objectcxr.sh prints (OOF and dev AUC and FROC with
# intervals, seconds per epoch and per test image), then the cache build time (decoding the films
# once per image size), the peak resident memory of the largest process (GNU time, when
# installed), the whole time, and bench/compare_runs.py's table of this run beside the small
# set's (SMALL_EXP, when that run's files are present). From scratch on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."

SOURCE=${SOURCE:-input/objectcxr_fullsize}
TOOLS=${TOOLS:-../shared/tools}
FILMS=${FILMS:-../shared/data/cxr_pneumonia_folder}
if [ ! -f "$SOURCE/train.csv" ]; then
    if [ ! -f "$TOOLS/make_semireal_objectcxr.py" ] || [ ! -d "$FILMS" ]; then
        echo "error: $SOURCE/train.csv not found, and $TOOLS/make_semireal_objectcxr.py or $FILMS to make it is missing" \
             "(SOURCE=<a data set in the Object-CXR layout>)" >&2
        exit 2
    fi
    made=$(date +%s)
    python3 "$TOOLS/make_semireal_objectcxr.py" "$FILMS" "$SOURCE" --upscale-to 2400 --grain 3
    echo "== full-size proxy written to $SOURCE in $(( $(date +%s) - made )) s"
fi
export DATASET=${DATASET:-$(basename "$SOURCE")}
export EXP=${EXP:-${DATASET}_bench}
mkdir -p reports
start=$(date +%s)
if [ -x /usr/bin/time ]; then
    SOURCE=$SOURCE /usr/bin/time -v -o "reports/$EXP.time" bash bench/objectcxr.sh "$@"
    peak=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f GiB", $2 / 1048576}' "reports/$EXP.time")
else
    SOURCE=$SOURCE bash bench/objectcxr.sh "$@"
    peak="not measured (GNU time is not installed)"
fi
{
    echo "== cache builds (each image size decodes the films once):"
    grep -h "^cache .* decoded in" "reports/$EXP.log" || echo "   none: the caches were built before"
    echo "== peak resident memory of the largest process: $peak"
    echo "== full-size benchmark took $(( $(date +%s) - start )) s in all"
    python3 bench/compare_runs.py "${SMALL_EXP:-objectcxr_semireal_bench}" "$EXP" || true
} 2>&1 | tee -a "reports/$EXP.log"
