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
# CUDNN=1 builds `--features cudnn` instead (candle's cuDNN convolutions) and
# writes .gpu/rote-cudnn.xz next to rote.xz. The link needs libcudnn, taken
# from NVIDIA's nvidia-cudnn-cu13 wheel, pinned to the version PyTorch 2.11.0
# requires (9.19.0.56), so every cuDNN symbol the binary imports is checked
# by the linker against the library the GPU machine's torch venv ships. Only
# the libcudnn.so.9 front end (SONAME libcudnn.so.9, about 130 kB) is
# unpacked: it exports the whole API and loads libcudnn_{graph,ops,cnn,...}.so.9
# from its own directory at run time. No cuDNN headers are needed (cudarc's
# bindings are pregenerated). The binary then NEEDs libcudnn.so.9.
# Same CARGO_TARGET_DIR as the plain build by default: RUSTFLAGS are the same
# and cargo keeps the artifacts of both feature sets side by side (only
# cudarc, candle-core, candle-nn and rote are built twice), so alternating
# the two modes does not rebuild anything; the libcudnn search path goes in
# through cudarc's CUDNN_LIB, not RUSTFLAGS, for that reason.
#
# Usage (from anywhere):  benches/gpu/build-cuda-here.sh
#                         CUDNN=1 benches/gpu/build-cuda-here.sh
# Environment (all optional):
#   CUDA_ROOT         where wheels and the toolkit go   (default /work/cuda13)
#   CARGO_TARGET_DIR  cargo target dir                  (default /work/target-cuda)
#   OUT_DIR_GPU       where the stripped binary goes    (default <repo>/.gpu)
#   CUDA_COMPUTE_CAP  GPU architecture                  (default 90, H100)
#   JOBS              cargo -j                          (default 2)
#   CUDNN             1: build --features cudnn -> rote-cudnn.xz (default 0)
#   CUDNN_WHEEL       cuDNN wheel for CUDNN=1     (default nvidia-cudnn-cu13==9.19.0.56)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CUDA_ROOT=${CUDA_ROOT:-/work/cuda13}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-cuda}
OUT_DIR_GPU=${OUT_DIR_GPU:-$REPO/.gpu}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
JOBS=${JOBS:-2}
PY=${PYTHON:-python3}
CUDNN=${CUDNN:-0}
CUDNN_WHEEL=${CUDNN_WHEEL:-nvidia-cudnn-cu13==9.19.0.56}
if [ "$CUDNN" = 1 ]; then
  FEATURES=cudnn NAME=rote-cudnn
else
  FEATURES=cuda NAME=rote
fi

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

# 4b. CUDNN=1: libcudnn.so.9 from the cuDNN wheel, in its own tree (the
#     wheel's layout: nvidia/cudnn/lib/libcudnn*.so.9), plus the unversioned
#     libcudnn.so link for -lcudnn. cudarc's build script adds
#     $CUDNN_LIB/lib to the link search path.
if [ "$CUDNN" = 1 ]; then
  CUDNN_VER=${CUDNN_WHEEL##*==}
  CUDNN_SITE=$CUDA_ROOT/site-cudnn-$CUDNN_VER
  mkdir -p "$CUDA_ROOT/wheels-cudnn"
  CUDNN_WHL=$(ls "$CUDA_ROOT"/wheels-cudnn/nvidia_cudnn_cu13-"$CUDNN_VER"-*.whl 2>/dev/null | head -1 || true)
  if [ -z "$CUDNN_WHL" ]; then
    "$PY" -m pip download --no-deps --only-binary=:all: \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
      --platform manylinux2014_x86_64 --python-version 3.11 \
      -d "$CUDA_ROOT/wheels-cudnn" "$CUDNN_WHEEL"
    CUDNN_WHL=$(ls "$CUDA_ROOT"/wheels-cudnn/nvidia_cudnn_cu13-"$CUDNN_VER"-*.whl | head -1)
  fi
  if [ ! -f "$CUDNN_SITE/.unpacked" ]; then
    "$PY" - "$CUDNN_WHL" "$CUDNN_SITE" <<'PYEOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = [n for n in z.namelist() if n.rsplit("/", 1)[-1].startswith("libcudnn.so")]
if len(names) != 1:
    sys.exit(f"expected one libcudnn.so* in {sys.argv[1]}, found {names}")
z.extract(names[0], sys.argv[2])
print(names[0])
PYEOF
    touch "$CUDNN_SITE/.unpacked"
  fi
  CUDNN_SO=$(find "$CUDNN_SITE" -name 'libcudnn.so.*' | head -1)
  CUDNN_SONAME=$(readelf -d "$CUDNN_SO" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  CUDNN_LIBDIR=$(dirname "$CUDNN_SO")
  ln -sfn "$(basename "$CUDNN_SO")" "$CUDNN_LIBDIR/libcudnn.so"
  export CUDNN_LIB=$(dirname "$CUDNN_LIBDIR")
  CUDNN_WHEEL_DIR=${CUDNN_LIBDIR#"$CUDNN_SITE"/}   # nvidia/cudnn/lib
fi

# 5. Build. cudarc reads the version from CUDARC_CUDA_VERSION (or nvcc on
#    PATH); candle-kernels' build script (cudaforge) finds nvcc via CUDA_HOME
#    and compiles its PTX and libmoe.a for sm_${CUDA_COMPUTE_CAP}.
export PATH=$CUDA_HOME/bin:$PATH
export CUDARC_CUDA_VERSION=13000
export NVCC=$CUDA_HOME/bin/nvcc
# ld resolves libcublas.so.13's own NEEDED (libcublasLt.so.13) through these.
export LD_LIBRARY_PATH=$LIB64:$LIB${CUDNN_LIBDIR:+:$CUDNN_LIBDIR}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$LIB64 -L native=$LIB64/stubs"

cd "$REPO"
nice -n 10 cargo build --release --locked --no-default-features --features "$FEATURES" --bin rote -j "$JOBS"

# 6. Strip, compress, describe. Only $NAME.xz (about 8 MB) goes into .gpu/, so
#    carrying .gpu to the GPU machine stays small; the stripped binary itself
#    (about 64 MB) stays next to the build as $NAME.stripped. Each mode writes
#    its part of README.txt to .gpu/.README.$NAME.txt; README.txt is the parts
#    whose .xz exists, so a build of one mode keeps the other's description.
mkdir -p "$OUT_DIR_GPU"
BIN=$CARGO_TARGET_DIR/release/rote
STRIPPED=$CARGO_TARGET_DIR/release/$NAME.stripped
strip -o "$STRIPPED" "$BIN"
xz -9 -T1 -c "$STRIPPED" > "$OUT_DIR_GPU/$NAME.xz.tmp"
mv -f "$OUT_DIR_GPU/$NAME.xz.tmp" "$OUT_DIR_GPU/$NAME.xz"
rm -f "$OUT_DIR_GPU/$NAME"
NEEDED=$(readelf -d "$STRIPPED" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
GLIBC_MIN=$(nm -D --undefined-only "$STRIPPED" | grep -oE 'GLIBC_[0-9.]+' | sort -Vu | tail -1 | cut -d_ -f2)
GLIBCXX_MIN=$(nm -D --undefined-only "$STRIPPED" | grep -oE 'GLIBCXX_[0-9.]+' | sort -Vu | tail -1)
if readelf -d "$STRIPPED" | grep -qE 'RPATH|RUNPATH'; then
  echo "warning: binary has an RPATH/RUNPATH" >&2
fi
if [ "$CUDNN" = 1 ] && ! grep -qx "$CUDNN_SONAME" <<<"$NEEDED"; then
  echo "error: $STRIPPED does not NEED $CUDNN_SONAME" >&2
  exit 1
fi
# A README.txt from before the parts existed describes rote.xz: keep it.
if [ ! -f "$OUT_DIR_GPU/.README.rote.txt" ] && [ -f "$OUT_DIR_GPU/rote.xz" ] \
   && head -1 "$OUT_DIR_GPU/README.txt" 2>/dev/null | grep -q '^rote, release, --no-default-features --features cuda,'; then
  cp "$OUT_DIR_GPU/README.txt" "$OUT_DIR_GPU/.README.rote.txt"
fi
{
cat <<EOF
$NAME.xz: rote, release, --no-default-features --features $FEATURES, built $(date -u +%Y-%m-%dT%H:%MZ)
from commit $(git -C "$REPO" rev-parse HEAD)$(git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' (with uncommitted changes)')
by benches/gpu/build-cuda-here.sh on a machine without a GPU:
  CUDA 13.0 from PyPI wheels (${WHEELS[*]})
  CUDA_HOME=$CUDA_HOME CUDARC_CUDA_VERSION=13000 CUDA_COMPUTE_CAP=$CUDA_COMPUTE_CAP
EOF
if [ "$CUDNN" = 1 ]; then
cat <<EOF
  cuDNN from $CUDNN_WHEEL ($CUDNN_WHEEL_DIR/$CUDNN_SONAME), CUDNN_LIB=$CUDNN_LIB
EOF
fi
cat <<EOF
  cargo build --release --locked --no-default-features --features $FEATURES --bin rote
  (libcuda.so linked against a stub; the real driver's libcuda.so.1 is loaded at run time)
Kernels: PTX (JIT-compiled by the driver at first use) and libmoe.a, for sm_${CUDA_COMPUTE_CAP}a
(cudaforge adds the 'a' suffix from 90 up; such code runs only on that architecture, e.g. H100/H200).
Needs glibc >= $GLIBC_MIN and libstdc++ with $GLIBCXX_MIN.

File: $NAME.xz ($(stat -c %s "$OUT_DIR_GPU/$NAME.xz") bytes), xz -9 of the stripped binary ($(stat -c %s "$STRIPPED") bytes,
sha256 $(sha256sum "$STRIPPED" | cut -d' ' -f1)). Unpack with either of:
  xz -dc .gpu/$NAME.xz > /tmp/$NAME && chmod +x /tmp/$NAME
  python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('.gpu/$NAME.xz'), open('/tmp/$NAME','wb'))" && chmod +x /tmp/$NAME

NEEDED:
$(echo "$NEEDED" | sed 's/^/  /')

EOF
if [ "$CUDNN" = 1 ]; then
cat <<EOF
On the GPU machine (driver >= 580 provides libcuda.so.1; CUDA 13.0 provides the CUDA libraries;
cuDNN 9 provides $CUDNN_SONAME, which loads its libcudnn_*.so.9 parts from its own directory):
  the CUDA 13 libraries as for rote.xz, plus the directory holding $CUDNN_SONAME. In the
  $CUDNN_WHEEL wheel (the one PyTorch 2.11.0 requires) that is $CUDNN_WHEEL_DIR;
  other cuDNN wheel versions may put it in nvidia/cu13/lib. With PyTorch's venv this covers both:
  N=/opt/torch/.venv/lib/python3.12/site-packages/nvidia
  export LD_LIBRARY_PATH=\$N/cudnn/lib:\$N/cu13/lib:/usr/local/cuda/lib64:\${LD_LIBRARY_PATH:-}
  # where it actually is:  find /opt/torch/.venv -name '$CUDNN_SONAME'
  # cuDNN there should be $CUDNN_VER or a newer 9.x (an older one may lack a symbol the binary imports)
  ldd /tmp/$NAME | grep 'not found'     # should print nothing
  /tmp/$NAME <command> ... --device cuda
EOF
else
cat <<EOF
On the GPU machine (driver >= 580 provides libcuda.so.1; CUDA 13.0 provides the rest):
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:\${LD_LIBRARY_PATH:-}
  # or, without a toolkit, the CUDA 13 wheels PyTorch installs:
  #   <venv>/lib/python3.*/site-packages/nvidia/cu13/lib
  ldd /tmp/$NAME | grep 'not found'     # should print nothing
  /tmp/$NAME <command> ... --device cuda
EOF
fi
} > "$OUT_DIR_GPU/.README.$NAME.txt"
{
  first=1
  for part in rote rote-cudnn; do
    if [ -f "$OUT_DIR_GPU/.README.$part.txt" ] && [ -f "$OUT_DIR_GPU/$part.xz" ]; then
      [ "$first" = 1 ] || printf '\n----------------------------------------------------------------------\n\n'
      cat "$OUT_DIR_GPU/.README.$part.txt"
      first=0
    fi
  done
} > "$OUT_DIR_GPU/README.txt.tmp"
mv -f "$OUT_DIR_GPU/README.txt.tmp" "$OUT_DIR_GPU/README.txt"
cat "$OUT_DIR_GPU/README.txt"
