#!/usr/bin/env bash
# Runs rote's benchmarks (CUDA build from build-cuda-here.sh, carried in .gpu/) and the PyTorch
# peers (benches/peers/) on the GPU machine, in parts (one or more per call of the device tool):
#   bash benches/gpu/run-h100.sh rote    # rote bench all --device cuda, the 2000-MLP zoo, cuDNN DDIM
#   bash benches/gpu/run-h100.sh peers   # the same workloads in PyTorch on the GPU
#   bash benches/gpu/run-h100.sh cpu     # both sides on the machine's 16 CPU cores
#   python3 benches/gpu/compare.py $OUT/rote.jsonl $OUT/peers.jsonl   # the side-by-side table
# Every figure goes to $OUT/<part>.log and JSON lines to $OUT/<part>.jsonl.
set -u
part=${1:-rote}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
log="$OUT/$part.log"
jsonl="$OUT/$part.jsonl"
exec > >(tee -a "$log") 2>&1
unpack() { # .gpu/NAME.xz -> /tmp/NAME
  [ -x "/tmp/$1" ] || { python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.gpu/$1.xz'), open('/tmp/$1','wb'))" && chmod +x "/tmp/$1"; }
}
unpack rote
[ -f .gpu/rote-cudnn.xz ] && unpack rote-cudnn
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
NV=$(python3 -c "import nvidia,os;print(list(nvidia.__path__)[0])" 2>/dev/null)
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$NV/cu13/lib:$NV/cudnn/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
run() { # name timeout command...
  local name=$1 t=$2; shift 2
  echo "=== $name: $*"
  local s=$(date +%s.%N)
  timeout "$t" "$@" | tee -a "$jsonl"
  echo "=== $name rc=${PIPESTATUS[0]} wall=$(python3 -c "print(round($(date +%s.%N)-$s,2))")s"
}
R=/tmp/rote
P=benches/peers
case $part in
rote)
  run all-cuda 420 $R bench all --device cuda --json
  [ -x /tmp/rote-cudnn ] && run ddim-cudnn 150 /tmp/rote-cudnn bench ddim --device cuda --json
  ;;
zoo2000)
  run zoo-cuda-2000 200 $R bench zoo --models 2000 --epochs 10 --device cuda --batched-only --json
  ;;
peers)
  run peer-zoo-256 120 python3 $P/zoo.py --device cuda --models 256 --epochs 10
  run peer-ddim 120 python3 $P/ddim.py --device cuda --samples 256 --steps 50 --base 32 --side 28 --warmup 1
  run peer-miface 60 python3 $P/miface.py --device cuda --iters 200
  run peer-tiled 60 python3 $P/tiled_l2.py --device cuda --m 10000 --n 10000
  run peer-nn 60 python3 $P/tiled_l2.py --device cuda --mode nn --m 10000 --n 10000
  ;;
tiled)
  run tiled-wgpu 120 $R bench tiled --m 10000 --n 10000 --json
  run peer-tiled-top10 60 python3 $P/tiled_l2.py --device cuda --m 10000 --n 10000 --topk 10
  run peer-tiled-cdist 60 python3 $P/tiled_l2.py --device cuda --m 10000 --n 10000 --method cdist --topk 10
  ;;
cpu)
  run invert-cpu16 90 $R bench invert --json
  RAYON_NUM_THREADS=4 run invert-cpu4 90 $R bench invert --json
  RAYON_NUM_THREADS=1 run invert-cpu1 90 $R bench invert --json
  run exposure-cpu16 90 $R bench exposure --json
  run peer-miface-cpu16 60 python3 $P/miface.py --device cpu --iters 200
  ;;
esac
