#!/usr/bin/env bash
# One-shot GPU check of onnxpress, under 8 minutes on one GPU:
#   1. nvidia-smi header          2. install the GPU libraries ORT links against (pip, into .venv)
#   3. the GPU subset of the tests 4. the GPU comparison in `onnxpress bench`'s report format
#
#   bash benchmarks/gpu_check.sh [--dry-run] [--out DIR]
#
# --dry-run walks every step that needs no GPU (environment, ORT build and the libraries it links,
# device detection, artifacts, test collection, bench flags) and prints what the GPU steps would run.
# Environment: ONNXPRESS_GPU_CLF / ONNXPRESS_GPU_MT (artifacts; default artifacts/clf, artifacts/mt,
# else the tiny test fixtures, whose figures only prove the path), ONNXPRESS_GPU_MT_CKPT (the
# translator's checkpoint, default runs/mt), GPU_CHECK_TORCH=0 to skip installing CUDA PyTorch
# (the largest download).
set -euo pipefail

DRY=0
OUT=gpu-check
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PY" ] || { echo "no venv python at $PY (set PYTHON=...)" >&2; exit 2; }
mkdir -p "$OUT"
START=$(date +%s)

step() { echo; echo "== $* ($(( $(date +%s) - START )) s)"; }
gpu() {  # a step that needs the GPU: run it, or say what would run
  if [ "$DRY" = 1 ]; then printf 'would run:'; printf ' %q' "$@"; echo; else printf '+'; printf ' %q' "$@"; echo; "$@"; fi
}

step "1. machine"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv | tee "$OUT/nvidia-smi.csv"
else
  echo "nvidia-smi: not found on this machine" | tee "$OUT/nvidia-smi.csv"
fi
"$PY" - <<'EOF'
import onnxruntime as ort
from onnxruntime.capi import build_and_package_info as info
print(f"onnxruntime {ort.__version__} ({info.package_name}, CUDA {getattr(info, 'cuda_version', '?')}); "
      f"providers built in: {', '.join(ort.get_available_providers())}")
EOF

step "2. GPU libraries ORT links against"
CAPI="$("$PY" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
ORT_VERSION="$("$PY" -c 'import onnxruntime; print(onnxruntime.__version__)')"
TRT_MAJOR=10
for lib in "$CAPI"/libonnxruntime_providers_cuda.so "$CAPI"/libonnxruntime_providers_tensorrt.so; do
  [ -f "$lib" ] || continue
  needed=$(readelf -d "$lib" 2>/dev/null | sed -n 's/.*Shared library: \[\(lib\(cu\|nv\)[^]]*\)\].*/\1/p' | tr '\n' ' ')
  echo "$(basename "$lib") needs: $needed"
  major=$(echo "$needed" | sed -n 's/.*libnvinfer\.so\.\([0-9]*\).*/\1/p')
  [ -n "$major" ] && TRT_MAJOR=$major
done
INSTALL=("$PY" -m pip install --quiet "onnxruntime-gpu[cuda,cudnn]==$ORT_VERSION" "tensorrt-cu13-libs>=$TRT_MAJOR,<$((TRT_MAJOR + 1))")
gpu "${INSTALL[@]}"
if [ "${GPU_CHECK_TORCH:-1}" = 1 ]; then
  TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null || echo "")"
  # the PyPI wheel of the same version is the CUDA build (its nvidia-* dependencies come along)
  gpu bash -c "'$PY' -m pip uninstall --quiet -y torch && '$PY' -m pip install --quiet 'torch==${TORCH_VERSION:-2.13.0}'"
else
  echo "GPU_CHECK_TORCH=0: PyTorch stays as installed (its GPU contenders are skipped when it has no CUDA)"
fi
# pip-installed CUDA/cuDNN/TensorRT libraries are found by the dynamic loader through this
LIBS="$("$PY" -c 'import glob, os, site; print(":".join(sorted(glob.glob(os.path.join(site.getsitepackages()[0], "nvidia", "*", "lib")) + glob.glob(os.path.join(site.getsitepackages()[0], "tensorrt_libs")))))')"
export LD_LIBRARY_PATH="${LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH += ${LIBS:-(no pip GPU libraries installed)}"
"$PY" - <<'EOF'
from onnxpress.runtime.devices import detect
acc = detect()
for device in ("cpu", "cuda", "tensorrt"):
    print(f"{device:9s} {'usable' if acc.usable(device) else 'not usable: ' + acc.why_not(device)}")
EOF

step "3. artifacts"
CLF="${ONNXPRESS_GPU_CLF:-artifacts/clf}"
MT="${ONNXPRESS_GPU_MT:-artifacts/mt}"
[ -f "$CLF/manifest.json" ] || { echo "no $CLF: using the tiny test fixture (figures prove the path only)"; CLF=tests/fixtures/legacy_classifier; }
[ -f "$MT/manifest.json" ] || { echo "no $MT: using the tiny test fixture (figures prove the path only)"; MT=tests/fixtures/legacy_translator; }
"$PY" - "$CLF" "$MT" <<'EOF'
import sys
from onnxpress.runtime.artifact import Artifact
for path in sys.argv[1:]:
    art = Artifact.open(path)
    print(f"{path}: {art.task}; variants " + ", ".join(
        f"{n} ({v.precision}, {'/'.join(v.devices)})" for n, v in art.manifest.variants.items() if v.servable))
EOF

step "4. GPU subset of the tests (the runtime suite: its GPU-only tests run where a GPU is usable)"
TESTS=("$PY" -m pytest -q -p no:cacheprovider tests/runtime)
if [ "$DRY" = 1 ]; then
  echo "tests that would run: $("${TESTS[@]}" --collect-only -q 2>/dev/null | awk -F": " "NF == 2 {n += \$2} END {print n + 0}")"
  echo "would run: ${TESTS[*]}"
else
  echo "+ ${TESTS[*]}"
  "${TESTS[@]}" > "$OUT/tests.log" 2>&1 || TESTS_FAILED=1
  tail -5 "$OUT/tests.log"
fi

step "5. GPU comparison (onnxpress bench report format; batch 1..256, AG News test texts)"
HELP="$("$PY" -m onnxpress bench --help 2>&1 || true)"
has() { grep -qE -- "$1" <<<"$HELP"; }
BATCHES=1,2,4,8,16,32,64,128,256
# latency (p50/p99 per batch size, e2e) and throughput (whole test set, fresh process per contender)
COMMON=(--modes e2e --batch-sizes "$BATCHES" --rounds 1 --throughput-budget 30 --latency-budget 40 --no-roofline --no-cold-start)
AGAINST=torch
if has "torch-fp16"; then AGAINST=torch,torch-fp16; else echo "note: onnxpress bench has no torch-fp16 (autocast) contender yet: PyTorch fp32 only"; fi
DEVICES=(cuda)
if has "device \{[^}]*tensorrt"; then DEVICES+=(tensorrt); else echo "skipped: onnxpress bench has no --device tensorrt yet (TensorRT fp16/int8 rows need it)"; fi
MT_CKPT="${ONNXPRESS_GPU_MT_CKPT:-runs/mt}"
# the rows each run will hold: peers, then the artifact's variants that run on the device
"$PY" - "$CLF" "$MT" "$AGAINST" "$BATCHES" "$MT_CKPT" "${DEVICES[@]}" <<'EOF_ROWS'
import sys
from onnxpress.runtime.artifact import Artifact
from onnxpress.runtime.variants import runs_on
clf, mt, against, batches, mt_ckpt, *devices = sys.argv[1:]
torch_rows = {"torch": "PyTorch eager fp32 (CUDA)", "torch-fp16": "PyTorch CUDA autocast fp16"}
for path, what in ((clf, "classifier"), (mt, "translator")):
    variants = Artifact.open(path).manifest.variants
    for device in devices:
        ours = [f"onnxpress {n} ({device} {v.precision})" for n, v in variants.items() if v.servable and runs_on(v, device)]
        peers = ([torch_rows[p] for p in against.split(",")] if what == "classifier"
                 else [f"PyTorch modules fp32 (CPU, checkpoint {mt_ckpt})"])
        shape = f"batch sizes {batches}" if what == "classifier" else "greedy and beam 4, whole test set"
        print(f"rows {what} --device {device} ({shape}): " + "; ".join(peers + (ours or ["no variant runs here"])))
EOF_ROWS
MEM_LOG="$OUT/gpu_memory.csv"
if [ "$DRY" = 0 ] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=timestamp,memory.used --format=csv -lms 500 > "$MEM_LOG" &
  SMI=$!
  trap 'kill "$SMI" 2>/dev/null || true' EXIT
fi
for device in "${DEVICES[@]}"; do
  gpu "$PY" -m onnxpress bench "$CLF" --device "$device" --data ag_news --against "$AGAINST" "${COMMON[@]}" --out "$OUT/classifier-$device"
done
for device in "${DEVICES[@]}"; do
  gpu "$PY" -m onnxpress bench "$MT" --device "$device" --data multi30k --checkpoint "$MT_CKPT" --against '' --beams 1,4 --rounds 1 --throughput-texts 500 --out "$OUT/translator-$device"
done
if [ -n "${SMI:-}" ]; then
  kill "$SMI" 2>/dev/null || true
  echo "GPU memory samples: $MEM_LOG (peak $(tail -n +2 "$MEM_LOG" | awk -F', ' '{gsub(/ MiB/,"",$2); if ($2>m) m=$2} END {print m+0}') MiB)"
fi

step "done: $OUT/ ($(( $(date +%s) - START )) s)"
[ "$DRY" = 1 ] && echo "dry run: nothing above marked 'would run' was executed"
[ -z "${TESTS_FAILED:-}" ] || { echo "the GPU test subset FAILED: $OUT/tests.log" >&2; exit 1; }
exit 0
