#!/usr/bin/env bash
# run.sh on a Slurm cluster: the folds and checks here, then every model x fold as one array job
# (slurm/train_array.sbatch, one GPU a task), then the blend as a job that starts when all
# tasks have succeeded. Settings are run.sh's (environment variables, CONFIG=FILE); arguments go to
# every train.py call.
#
#   DATASET=objectcxr EXP=full ARCHS="resnet101 densenet121" MAP_ARCHS="resnet34" N_FOLDS=5 \
#       bash slurm/submit.sh --pretrained --amp bf16
#
# SBATCH_ARGS="--partition=gpu --time=24:00:00" adds sbatch options to both jobs.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs  # Slurm opens each job's --output file before the job starts: its folder must exist

models=$(PREPARE_ONLY=1 bash run.sh "$@" | tee /dev/stderr | sed -n 's/^== models: //p')
read -r -a list <<< "$models"
tasks=$(( ${#list[@]} * ${N_FOLDS:-5} ))
# shellcheck disable=SC2086
array=$(sbatch --parsable ${SBATCH_ARGS:-} --array=0-$(( tasks - 1 )) --export=ALL,MODELS="$models" \
    slurm/train_array.sbatch "$@")
# shellcheck disable=SC2086
blend=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency=afterok:"${array%%;*}" --job-name=cxr-blend \
    --output=logs/slurm-blend-%j.out --export=ALL --wrap "bash run.sh $*")
echo "submitted: training array ${array%%;*} ($tasks tasks: ${models} x ${N_FOLDS:-5} folds, logs/slurm-<job>_<task>.out)," \
     "then the blend, job ${blend%%;*} (logs/slurm-blend-${blend%%;*}.out)"
