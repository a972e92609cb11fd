#!/usr/bin/env bash
# Runs rote's benchmarks (CUDA build from build-cuda-here.sh, carried in .gpu/) and the PyTorch
# peers (benches/peers/) on the GPU machine, one part per call of the device tool:
#   bash benches/gpu/run-h100.sh rote    # rote's CUDA and wgpu figures
#   bash benches/gpu/run-h100.sh peers   # the same workloads in PyTorch
# Every figure goes to $OUT/<part>.log (and JSON lines to $OUT/<part>.jsonl).
set -u
part=${1:-rote}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
log="$OUT/$part.log"
jsonl="$OUT/$part.jsonl"
exec > >(tee -a "$log") 2>&1
if [ ! -x /tmp/rote ]; then
  python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.gpu/rote.xz'), open('/tmp/rote','wb'))" && chmod +x /tmp/rote
fi
if [ -d .gl ] && ! ldconfig -p | grep -q libvulkan; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:$(python3 -c "import nvidia,os;print(os.path.join(list(nvidia.__path__)[0],'cu13','lib'))" 2>/dev/null):${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
ldd /tmp/rote | grep 'not found'
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
  run exposure-cuda 90 $R bench exposure --device cuda --json
  run exposure-cuda-7d 90 $R bench exposure --device cuda --digits 7 --json
  run exposure-cuda-256-7d 120 $R bench exposure --device cuda --digits 7 --hidden 256 --json
  run exposure-cpu16 90 $R bench exposure --json
  run invert-cuda 90 $R bench invert --device cuda --json
  run invert-cpu16 90 $R bench invert --json
  run ddim-cuda 150 $R bench ddim --device cuda --json
  run zoo-cuda-256 120 $R bench zoo --models 256 --epochs 10 --device cuda --batched-only --json
  run tiled-wgpu 90 $R bench tiled --m 10000 --n 10000 --json
  run nn-wgpu 60 $R bench nn --m 10000 --n 10000 --json
  ;;
zoo)
  run zoo-cuda-2000 300 $R bench zoo --models 2000 --epochs 10 --device cuda --batched-only --json
  run zoo-peer-2000 200 python3 $P/zoo.py --device cuda --models 2000 --epochs 10
  ;;
peers)
  run peer-zoo-256 120 python3 $P/zoo.py --device cuda --models 256 --epochs 10
  run peer-ddim 120 python3 $P/ddim.py --device cuda --samples 256 --steps 50 --base 32 --side 28 --warmup 0
  run peer-miface 60 python3 $P/miface.py --device cuda --iters 200
  run peer-tiled 60 python3 $P/tiled_l2.py --device cuda --m 10000 --n 10000
  run peer-nn 60 python3 $P/tiled_l2.py --device cuda --mode nn --m 10000 --n 10000
  run peer-miface-cpu16 60 python3 $P/miface.py --device cpu --iters 200
  ;;
esac
