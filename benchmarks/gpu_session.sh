#!/usr/bin/env bash
# Issue 6's GPU checks and figures in one go, sized for one call of a borrowed H100/H200 (about 8 min):
#
#   bash benchmarks/gpu_session.sh            # on the GPU machine, from the repository root
#   GPU=-1 SIZE=32 HD=64 CONFIGS="fp32 bf16" bash benchmarks/gpu_session.sh   # a quick dry run on a CPU
#
# 1. training paths no CPU can run: fp16 with its per-group scalers and a resume, bf16 + compile with a
#    resume, and torchrun with the nccl backend and --norm syncbatch (one process: NCCL takes one GPU per
#    process); each run must finish and its loss log must be finite;
# 2. the loader's images/s with 0, 4 and 8 workers; the throughput table (benchmarks/bench_table.py): pix2pix and CycleGAN at SIZE px, batch 1 and 8,
#    fp32 / bf16 / bf16+compile, then pix2pixHD's local generator at HD x 2HD (the 30 fps target);
# 3. CUT, FastCUT and pix2pixHD's rows, if time is left.
# Everything goes to $OUT/gpu_session.log (or ./gpu_session.log); copy the figures into RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
GPU=${GPU:-0}
SIZE=${SIZE:-256}
HD=${HD:-1024}
CONFIGS=${CONFIGS:-fp32 bf16 bf16+compile}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log="${OUT:-.}/gpu_session.log"
tmp=$(mktemp -d)

check_log() {  # the run's loss log exists and every figure in it is finite
  python3 - "$1" <<'EOF'
import csv, math, sys
rows = list(csv.reader(open(sys.argv[1])))[1:]
bad = [r for r in rows if not all(math.isfinite(float(v)) for v in r[4:])]
print(f"{sys.argv[1]}: {len(rows)} rows, {len(bad)} with NaN or inf")
sys.exit(1 if bad or not rows else 0)
EOF
}

step() {  # name, command...: run it, report pass or fail and the seconds it took
  local name=$1 start=$SECONDS
  shift
  if "$@"; then echo "PASS $name ($((SECONDS - start)) s)"; else echo "FAIL $name ($((SECONDS - start)) s)"; fi
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
  python3 -m ganvas data synth --kind paired --out "$tmp/paired" --n_train 16 --n_test 4 --size 64 >/dev/null
  common=(--dataroot "$tmp/paired" --checkpoints_dir "$tmp/ck" --gpu_ids "$GPU" --netG unet_64 --load_size 64
          --crop_size 64 --batch_size 4 --n_epochs 1 --n_epochs_decay 1 --print_freq 4 --num_threads 2)
  step "fp16 train" python3 -m ganvas train "${common[@]}" --name fp16 --amp fp16
  step "fp16 resume" python3 -m ganvas train "${common[@]}" --name fp16 --amp fp16 --continue_train --n_epochs_decay 2
  step "fp16 log" check_log "$tmp/ck/fp16/loss_log.csv"
  step "bf16+compile train" python3 -m ganvas train "${common[@]}" --name comp --amp bf16 --compile
  step "bf16+compile resume" python3 -m ganvas train "${common[@]}" --name comp --amp bf16 --compile --continue_train \
    --n_epochs_decay 2
  step "bf16+compile log" check_log "$tmp/ck/comp/loss_log.csv"
  if [ "$GPU" != "-1" ]; then
    step "torchrun nccl syncbatch" torchrun --standalone --nproc_per_node 1 -m ganvas train "${common[@]}" \
      --name sync --norm syncbatch
    step "syncbatch log" check_log "$tmp/ck/sync/loss_log.csv"
  fi
  timeout 60 python3 benchmarks/bench_loader.py --workers 0 4 8
  # shellcheck disable=SC2086
  timeout 300 python3 benchmarks/bench_table.py --gpu_ids "$GPU" --size "$SIZE" --configs $CONFIGS \
    --models pix2pix cycle_gan --hd_infer "$HD"
  # shellcheck disable=SC2086
  timeout 150 python3 benchmarks/bench_table.py --gpu_ids "$GPU" --size "$SIZE" --configs $CONFIGS \
    --models CUT FastCUT pix2pixhd --batches 1
} 2>&1 | grep -v -e "UserWarning" -e "check_worker_number_rationality" | tee "$log"
rm -rf "$tmp"
