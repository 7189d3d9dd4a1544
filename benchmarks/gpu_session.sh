#!/usr/bin/env bash
# Issue 6's GPU checks and figures, in two parts sized for two calls of a borrowed H100/H200 (each
# part's time limits add up to at most 430 s; most runs take far less; give each call timeout_s 480):
#
#   bash benchmarks/gpu_session.sh checks     # on the GPU machine, from the repository root
#   bash benchmarks/gpu_session.sh table
#   GPU=-1 SIZE=32 HD=64 CONFIGS="fp32" bash benchmarks/gpu_session.sh checks   # a dry run on a CPU (slow)
#
# checks: 1. pix2pixHD's local generator at HD x 2HD, inference, per configuration (the 30 fps target);
#   2. training paths no CPU checks: fp16 with its per-group scalers and a resume, bf16 + compile and a
#   resume, and a torchrun launch on the nccl backend with --norm syncbatch (one process, as NCCL takes
#   one GPU per process: DDP and the SyncBatchNorm conversion run, the cross-GPU statistics need two);
#   each run must finish and leave a finite loss log; 3. the loader's images/s with 0, 4 and 8 workers.
# table: the throughput table (benchmarks/bench_table.py): pix2pix and CycleGAN at SIZE px, batch 1
#   and 8, then CUT, FastCUT and pix2pixHD at batch 1, each in CONFIGS.
# Every part has its own time limit and prints PASS or FAIL; the exit status is the number of FAILs.
# Everything goes to $OUT/gpu_session_<part>.log (or ./); copy the figures into RESULTS.md.
set -uo pipefail
cd "$(dirname "$0")/.."
GPU=${GPU:-0}
SIZE=${SIZE:-256}
HD=${HD:-1024}
CONFIGS=${CONFIGS:-fp32 bf16 bf16+compile}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PART=${1:-checks}
log="${OUT:-.}/gpu_session_$PART.log"
tmp=$(mktemp -d)
failures=0

# The run's loss log exists and every figure in it is finite (a file, so that `timeout` can run it).
cat > "$tmp/check_log.py" <<'EOF'
import csv, math, sys
rows = list(csv.reader(open(sys.argv[1])))[1:]
bad = [r for r in rows if not all(math.isfinite(float(v)) for v in r[4:])]
print(f"{sys.argv[1]}: {len(rows)} rows, {len(bad)} with NaN or inf")
sys.exit(1 if bad or not rows else 0)
EOF

step() {  # seconds, name, command...: run it under a time limit and report PASS or FAIL with its time
  local limit=$1 name=$2 start=$SECONDS
  shift 2
  if timeout "$limit" "$@"; then
    echo "PASS $name ($((SECONDS - start)) s)"
  else
    echo "FAIL $name (exit $?, $((SECONDS - start)) s; 124 is the time limit)"
    failures=$((failures + 1))
  fi
}

checks() {
  # shellcheck disable=SC2086
  step 90 "pix2pixHD local ${HD}x$((2 * HD)) inference" python3 benchmarks/bench_table.py --gpu_ids "$GPU" \
    --configs $CONFIGS --models --hd_infer "$HD" --steps 20 --warmup 3
  python3 -m ganvas data synth --kind paired --out "$tmp/paired" --n_train 16 --n_test 4 --size 64 >/dev/null
  local common=(--dataroot "$tmp/paired" --checkpoints_dir "$tmp/ck" --gpu_ids "$GPU" --netG unet_64 --load_size 64
                --crop_size 64 --batch_size 4 --n_epochs 1 --n_epochs_decay 1 --print_freq 4 --num_threads 2)
  step 30 "fp16 train" python3 -m ganvas train "${common[@]}" --name fp16 --amp fp16
  step 30 "fp16 resume" python3 -m ganvas train "${common[@]}" --name fp16 --amp fp16 --continue_train \
    --n_epochs_decay 2
  step 5 "fp16 log" python3 "$tmp/check_log.py" "$tmp/ck/fp16/loss_log.csv"
  step 100 "bf16+compile train" python3 -m ganvas train "${common[@]}" --name comp --amp bf16 --compile
  step 90 "bf16+compile resume" python3 -m ganvas train "${common[@]}" --name comp --amp bf16 --compile \
    --continue_train --n_epochs_decay 2
  step 5 "bf16+compile log" python3 "$tmp/check_log.py" "$tmp/ck/comp/loss_log.csv"
  if [ "$GPU" != "-1" ]; then
    step 45 "torchrun nccl syncbatch" torchrun --standalone --nproc_per_node 1 -m ganvas train "${common[@]}" \
      --name sync --norm syncbatch
    step 5 "syncbatch log" python3 "$tmp/check_log.py" "$tmp/ck/sync/loss_log.csv"
  fi
  step 30 "loader" python3 benchmarks/bench_loader.py --workers 0 4 8
}

table() {
  # shellcheck disable=SC2086
  step 300 "table: pix2pix, cycle_gan" python3 benchmarks/bench_table.py --gpu_ids "$GPU" --size "$SIZE" \
    --configs $CONFIGS --models pix2pix cycle_gan
  # shellcheck disable=SC2086
  step 110 "table: CUT, FastCUT, pix2pixhd" python3 benchmarks/bench_table.py --gpu_ids "$GPU" --size "$SIZE" \
    --configs $CONFIGS --models CUT FastCUT pix2pixhd --batches 1
}

main() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count())"
  case "$PART" in
    checks) checks ;;
    table) table ;;
    *) echo "usage: bash benchmarks/gpu_session.sh checks|table"; return 1 ;;
  esac
  echo "$failures failed"
  return "$failures"
}

main 2>&1 | grep --line-buffered -v -e "UserWarning" -e "check_worker_number_rationality" | tee "$log"
status=${PIPESTATUS[0]}
rm -rf "$tmp"
exit "$status"
