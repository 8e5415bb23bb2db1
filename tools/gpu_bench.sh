#!/usr/bin/env bash
# Issue 24's GPU figures, in one short script (about 4 minutes on one H200 with 16 CPU cores):
#  1. `dp_leakage_bench --only gpu_attack_throughput_ratio,gpu_dlg_time_ratio`: DLG runs per minute batched on the GPU
#     against all CPU cores, and one DLG run's time on the GPU against one CPU core;
#  2. a slice of the primary attack grid (`--limit`, default 88 runs: the first image's) batched on CUDA
#     (`dp_leakage_sweep --grid attack --device cuda`, engine 'batched'), and the same slice batched on all CPU cores;
#  3. how far the two slices' records differ (the device changes only floating-point rounding).
# Run from anywhere:  bash tools/gpu_bench.sh [LIMIT]
# Prepare on a machine with the project's .venv (both folders are git-ignored; carry them to the GPU machine):
#   mkdir -p build/gpu_site data/MNIST && cp -r .venv/lib/python3.*/site-packages/{opacus,fastcore,fastprogress} build/gpu_site/
#   cp -r "$DP_LEAKAGE_DATA/MNIST/raw" data/MNIST/
# Needs: torch with CUDA, torchvision (matching torch), timm, opacus, fastcore, fastprogress, numpy, pandas, scipy,
# scikit-image, scikit-learn, pillow, matplotlib; opacus, fastcore and fastprogress are taken from build/gpu_site
# (pure Python, copied from the project's .venv) where they are not installed. MNIST: $DP_LEAKAGE_DATA/MNIST/raw
# (default ./data). Nothing is downloaded. Outputs: $OUT (default a new temporary folder).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LIMIT=${1:-88}
OUT=${OUT:-$(mktemp -d)}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export DP_LEAKAGE_DATA=${DP_LEAKAGE_DATA:-$PWD/data}
export DP_LEAKAGE_CACHE=${DP_LEAKAGE_CACHE:-$OUT/cache}
fallback=$(mktemp -d)   # only the packages missing here, after the installed ones
for p in opacus fastcore fastprogress; do
  $PY -c "import $p" 2>/dev/null || { [ -d build/gpu_site/$p ] && ln -s "$PWD/build/gpu_site/$p" "$fallback/$p" && echo "# $p: not installed, taken from build/gpu_site"; }
done
export PYTHONPATH="$PYTHONPATH:$fallback"
# the console scripts, run from files (fastcore's call_parse reads the command line only when called from a file's __main__)
printf 'from dp_leakage.bench import bench_cli\nbench_cli()\n' > "$fallback/_bench.py"
printf 'from dp_leakage.sweep import sweep_cli\nsweep_cli()\n' > "$fallback/_sweep.py"
$PY - <<'PYEOF'
import importlib, os, platform, torch
print(f"# python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}"
      + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else '') + f", {os.cpu_count()} CPU cores")
for m in ('torchvision', 'timm', 'opacus', 'fastcore', 'fastprogress', 'skimage', 'sklearn', 'scipy', 'pandas', 'PIL'):
    try: print(f"# {m} {importlib.import_module(m).__version__}")
    except Exception as e: print(f"# {m} MISSING ({type(e).__name__}: {e})")
PYEOF
echo "## 1. GPU figures"
timeout 110 $PY "$fallback/_bench.py" --only gpu_attack_throughput_ratio,gpu_dlg_time_ratio --threads 1
echo "## 2. primary grid, first $LIMIT runs, batched: CUDA, then all CPU cores"
for dev in cuda cpu; do
  t0=$(date +%s.%N)
  timeout 55 $PY "$fallback/_sweep.py" --grid attack --device $dev --engine batched \
    --limit "$LIMIT" --out "$OUT/grid_$dev" --threads "$( [ $dev = cpu ] && nproc || echo 1 )" > "$OUT/grid_$dev.log" 2>&1
  rc=$?; t1=$(date +%s.%N)
  tail -n 3 "$OUT/grid_$dev.log"
  echo "grid slice on $dev: $LIMIT runs in $(echo "$t1 - $t0" | bc) s (exit $rc; 124: stopped at 55 s)"
done
echo "## 3. records of the two devices"
$PY - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
recs = {d: {p.parent.name: json.loads(p.read_text()) for p in (out/f'grid_{d}'/'attack').glob('*/result.json')} for d in ('cuda', 'cpu')}
both = sorted(set(recs['cuda']) & set(recs['cpu']))
print(f"records: cuda {len(recs['cuda'])}, cpu {len(recs['cpu'])}, both {len(both)}")
if both:
    d = [abs(recs['cuda'][k]['ssim'] - recs['cpu'][k]['ssim']) for k in both]
    same_lab = sum(recs['cuda'][k]['labels'] == recs['cpu'][k]['labels'] for k in both)
    same_it = sum(recs['cuda'][k]['iterations_run'] == recs['cpu'][k]['iterations_run'] for k in both)
    d.sort()
    print(f"|SSIM cuda - cpu|: median {d[len(d)//2]:.2e}, 90th percentile {d[int(.9*len(d))]:.2e}, max {d[-1]:.2e}; "
          f"same labels {same_lab}/{len(both)}, same iterations run {same_it}/{len(both)}")
    print("same fields:", all(sorted(recs['cuda'][k]) == sorted(recs['cpu'][k]) for k in both))
    sec = {dv: sum(recs[dv][k]['seconds'] for k in both) for dv in recs}
    print(f"summed per-run seconds: cuda {sec['cuda']:.1f}, cpu {sec['cpu']:.1f}")
PYEOF
