#!/usr/bin/env bash
# Build a CUDA-enabled release `rote` on a machine with no GPU and no CUDA
# toolkit, for copying to a GPU machine that has the NVIDIA driver (>= 580,
# CUDA 13.0) and the CUDA 13 runtime libraries but no Rust toolchain.
#
# How: the CUDA 13.0 compiler and libraries come from NVIDIA's PyPI wheels,
# unpacked into $CUDA_ROOT (outside the repository). The wheels' nvidia/cu13
# tree already has the CUDA_HOME layout (bin/nvcc, nvvm/, include/, lib/);
# this script adds lib64/ with the unversioned .so links the linker wants and
# a stub libcuda.so (SONAME libcuda.so.1) that exports every driver symbol
# cudarc declares. The stub only satisfies the link: at run time the binary
# loads the real driver's libcuda.so.1.
#
# Idempotent: downloads, unpacking and the stub are skipped when present.
#
# Usage (from anywhere):  benches/gpu/build-cuda-here.sh
# Environment (all optional):
#   CUDA_ROOT         where wheels and the toolkit go   (default /work/cuda13)
#   CARGO_TARGET_DIR  cargo target dir                  (default /work/target-cuda)
#   OUT_DIR_GPU       where the stripped binary goes    (default <repo>/.gpu)
#   CUDA_COMPUTE_CAP  GPU architecture                  (default 90, H100)
#   JOBS              cargo -j                          (default 2)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CUDA_ROOT=${CUDA_ROOT:-/work/cuda13}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-cuda}
OUT_DIR_GPU=${OUT_DIR_GPU:-$REPO/.gpu}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
JOBS=${JOBS:-2}
PY=${PYTHON:-python3}

# CUDA 13.0 (matches driver 580 / the GPU machine's /usr/local/cuda 13.0).
# PTX from a newer nvcc would not load on a 13.0 driver, so keep these at 13.0.
WHEELS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cuda-nvrtc==13.0.88
  nvidia-cublas==13.0.2.14
  nvidia-curand==10.4.0.35
)

mkdir -p "$CUDA_ROOT/wheels" "$CUDA_ROOT/site"

# 1. Download the wheels (no install; pip only fetches the files).
if [ "$(ls "$CUDA_ROOT"/wheels/*.whl 2>/dev/null | wc -l)" -lt "${#WHEELS[@]}" ]; then
  "$PY" -m pip download --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux2014_x86_64 --python-version 3.11 \
    -d "$CUDA_ROOT/wheels" "${WHEELS[@]}"
fi

# 2. Unpack them (wheels are zip files) into one tree.
if [ ! -f "$CUDA_ROOT/site/.unpacked" ]; then
  for w in "$CUDA_ROOT"/wheels/*.whl; do
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$w" "$CUDA_ROOT/site"
  done
  chmod +x "$CUDA_ROOT"/site/nvidia/cu13/bin/* "$CUDA_ROOT"/site/nvidia/cu13/nvvm/bin/*
  touch "$CUDA_ROOT/site/.unpacked"
fi

export CUDA_HOME=$CUDA_ROOT/site/nvidia/cu13
LIB=$CUDA_HOME/lib
LIB64=$CUDA_HOME/lib64
mkdir -p "$LIB64/stubs"

# 3. Unversioned links for -lcudart -lcublas -lcublasLt -lcurand -lnvrtc.
for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13; do
  ln -sfn "../lib/$so" "$LIB64/$so"
  ln -sfn "$so" "$LIB64/${so%.so.*}.so"
done

# 4. Stub libcuda.so: one empty function per cu* symbol in cudarc's driver
#    bindings, SONAME libcuda.so.1 so the binary asks for the real driver.
CUDARC_SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 2>/dev/null | head -1 || true)
if [ -z "$CUDARC_SRC" ]; then
  (cd "$REPO" && cargo fetch --locked)
  CUDARC_SRC=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10 | head -1)
fi
if [ ! -f "$LIB64/stubs/libcuda.so" ]; then
  grep -ohE '\bfn (cu[A-Za-z0-9_]+) *\(' "$CUDARC_SRC/src/driver/sys/mod.rs" \
    | sed -E 's/^fn ([A-Za-z0-9_]+).*/\1/' | sort -u \
    | awk '{print "void " $1 "(void) {}"}' > "$LIB64/stubs/cuda_stub.c"
  gcc -shared -fPIC -o "$LIB64/stubs/libcuda.so" -Wl,-soname,libcuda.so.1 "$LIB64/stubs/cuda_stub.c"
fi

# 5. Build. cudarc reads the version from CUDARC_CUDA_VERSION (or nvcc on
#    PATH); candle-kernels' build script (cudaforge) finds nvcc via CUDA_HOME
#    and compiles its PTX and libmoe.a for sm_${CUDA_COMPUTE_CAP}.
export PATH=$CUDA_HOME/bin:$PATH
export CUDARC_CUDA_VERSION=13000
export NVCC=$CUDA_HOME/bin/nvcc
# ld resolves libcublas.so.13's own NEEDED (libcublasLt.so.13) through these.
export LD_LIBRARY_PATH=$LIB64:$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$LIB64 -L native=$LIB64/stubs"

cd "$REPO"
nice -n 10 cargo build --release --locked --no-default-features --features cuda --bin rote -j "$JOBS"

# 6. Strip, compress, describe. Only rote.xz (about 8 MB) goes into .gpu/, so
#    carrying .gpu to the GPU machine stays small; the stripped binary itself
#    (about 64 MB) stays next to the build as rote.stripped.
mkdir -p "$OUT_DIR_GPU"
BIN=$CARGO_TARGET_DIR/release/rote
STRIPPED=$CARGO_TARGET_DIR/release/rote.stripped
strip -o "$STRIPPED" "$BIN"
xz -9 -T1 -c "$STRIPPED" > "$OUT_DIR_GPU/rote.xz.tmp"
mv -f "$OUT_DIR_GPU/rote.xz.tmp" "$OUT_DIR_GPU/rote.xz"
rm -f "$OUT_DIR_GPU/rote"
NEEDED=$(readelf -d "$STRIPPED" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
GLIBC_MIN=$(nm -D --undefined-only "$STRIPPED" | grep -oE 'GLIBC_[0-9.]+' | sort -Vu | tail -1 | cut -d_ -f2)
GLIBCXX_MIN=$(nm -D --undefined-only "$STRIPPED" | grep -oE 'GLIBCXX_[0-9.]+' | sort -Vu | tail -1)
if readelf -d "$STRIPPED" | grep -qE 'RPATH|RUNPATH'; then
  echo "warning: binary has an RPATH/RUNPATH" >&2
fi
cat > "$OUT_DIR_GPU/README.txt" <<EOF
rote, release, --no-default-features --features cuda, built $(date -u +%Y-%m-%dT%H:%MZ)
from commit $(git -C "$REPO" rev-parse HEAD)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (with uncommitted changes)')
by benches/gpu/build-cuda-here.sh on a machine without a GPU:
  CUDA 13.0 from PyPI wheels (${WHEELS[*]})
  CUDA_HOME=$CUDA_HOME CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP
  cargo build --release --locked --no-default-features --features cuda --bin rote
  (libcuda.so linked against a stub; the real driver's libcuda.so.1 is loaded at run time)
Kernels: PTX (JIT-compiled by the driver at first use) and libmoe.a, for sm_${CUDA_COMPUTE_CAP}a
(cudaforge adds the 'a' suffix from 90 up; such code runs only on that architecture, e.g. H100/H200).
Needs glibc >= $GLIBC_MIN and libstdc++ with $GLIBCXX_MIN.

File: rote.xz ($(stat -c %s "$OUT_DIR_GPU/rote.xz") bytes), xz -9 of the stripped binary ($(stat -c %s "$STRIPPED") bytes,
sha256 $(sha256sum "$STRIPPED" | cut -d' ' -f1)). Unpack with either of:
  xz -dc .gpu/rote.xz > /tmp/rote && chmod +x /tmp/rote
  python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.gpu/rote.xz'), open('/tmp/rote','wb'))" && chmod +x /tmp/rote

NEEDED:
$(echo "$NEEDED" | sed 's/^/  /')

On the GPU machine (driver >= 580 provides libcuda.so.1; CUDA 13.0 provides the rest):
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:\${LD_LIBRARY_PATH:-}
  # or, without a toolkit, the CUDA 13 wheels PyTorch installs:
  #   <venv>/lib/python3.*/site-packages/nvidia/cu13/lib
  ldd /tmp/rote | grep 'not found'     # should print nothing
  /tmp/rote <command> ... --device cuda
EOF
cat "$OUT_DIR_GPU/README.txt"
