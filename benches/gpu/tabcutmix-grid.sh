#!/usr/bin/env bash
# TabCutMix against no augmentation on Adult, several seeds and two regimes, on the GPU machine's
# 16 CPU cores (the tabular model runs on candle's CPU backend): one `rote train-tabular` per
# core, one thread each, all at once. The binary is the plain release build, carried as
# .gpu/rote-cpu.xz (strip + xz of target/release/rote).
#   bash benches/gpu/tabcutmix-grid.sh            # on the device machine, in the repo root
#   python3 benches/gpu/tabcutmix-summary.py $OUT/tabcutmix.jsonl
# Regimes: "default" = the CLI's defaults (2,000 rows, 400 epochs); "small" = 1,000 rows, 800
# epochs (the same number of optimiser steps on half the rows); "long" = 2,000 rows, 800 epochs.
# REGIMES="small long" picks some; SEEDS="0 1" the seeds; AUGMENTS="none tabcutmix-plus" the
# augmentations (each compared with none); SHARES="0.3 1" the --augment-share values of each
# augmentation (a share other than the reference's 0.3 is named AUG-xSHARE); THREADS=2 threads per
# run. QUICK=1: tiny runs, to test the script.
set -u
OUT=${OUT:-/tmp/out}
SEEDS=${SEEDS:-"0 1 2 3"}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/tabcutmix.log") 2>&1
R=/tmp/rote
export ROTE_ASSETS=${ROTE_ASSETS:-$PWD/assets}
[ -x $R ] || { python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.gpu/rote-cpu.xz'), open('$R','wb'))" && chmod +x $R; }
nproc; lscpu | grep -m1 'Model name'
work=/tmp/tabgrid
rm -rf "$work"; mkdir -p "$work"
start=$(date +%s)
pids=()
for regime in ${REGIMES:-default small long}; do
  case $regime in
    default) flags="--rows 2000 --epochs 400" ;;
    small) flags="--rows 1000 --epochs 800" ;;
    long) flags="--rows 2000 --epochs 800" ;;
  esac
  [ -n "${QUICK:-}" ] && flags="--rows 300 --epochs 8 --checkpoints 2"
  for seed in $SEEDS; do
    for aug in ${AUGMENTS:-none tabcutmix}; do
      for share in ${SHARES:-0.3}; do
        [ "$aug" = none ] && [ "$share" != "${SHARES%% *}" ] && continue
        label=$aug
        [ "$aug" != none ] && [ "$share" != 0.3 ] && label=$aug-x$share
        name=$regime-$label-s$seed
        RAYON_NUM_THREADS=${THREADS:-1} $R train-tabular --data adult $flags --augment $aug \
          --augment-share "$share" --seed $seed \
          --id "$name" --out "$work/study-$name" --json >"$work/$name.json" 2>"$work/$name.err" &
        pids+=($!)
      done
    done
  done
done
wait "${pids[@]}"  # not a bare wait: that would wait for the tee above too
echo "all runs done in $(( $(date +%s) - start )) s"
for f in "$work"/*.json; do
  name=$(basename "$f" .json)
  if python3 -c "import json,sys; json.load(open(sys.argv[1]))" "$f" 2>/dev/null; then
    python3 -c "import json,sys; v=json.load(open(sys.argv[1])); v['run']=sys.argv[2]; print(json.dumps(v))" "$f" "$name" >>"$OUT/tabcutmix.jsonl"
  else
    echo "== $name failed:"; tail -5 "$work/$name.err"
  fi
done
python3 benches/gpu/tabcutmix-summary.py "$OUT/tabcutmix.jsonl" | tee "$OUT/tabcutmix-summary.txt"
