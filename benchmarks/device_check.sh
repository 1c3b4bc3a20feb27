#!/usr/bin/env bash
# Every GPU figure that issue 17 and the sweep-engine issue ask for, in one device call (at most
# about 9.5 minutes; each part is cut by `timeout` so the call fits the device tool's 10):
#   PYTHONPATH=. bash benchmarks/device_check.sh
# 1. `verify --study stabilizers --full`: the attention testbed's full design (10 draws, each with
#    its own pre-training, x 64 paired seeds x 7 arms; the target is 10 minutes on one H100), cut
#    at 300 s; its report, figures and timings are copied to $OUT/full (a cut run leaves its
#    finished chunks and says how many);
# 2. the public loo_stability path against its roof at n = 1024 and 4096 (float64, both losses);
# 3. `verify --study all` at the default replicates, then at 20 while a 140 s budget lasts
#    (compilation cache off: every run pays its compilations, as on a new machine).
# Compare with the same parts' CPU figures only through the printed backend and device.
set -u
cd "$(dirname "$0")/.."
out="${OUT:-$(mktemp -d)}"
python -c "import jax; d = jax.devices()[0]; print('backend', jax.default_backend(), d.device_kind)"

echo "== 1. verify --study stabilizers --full"
start=$SECONDS
timeout 300 python -m stabtheory.cli verify --study stabilizers --full --no-progress \
    --out "$out/full.run"
rc=$?
echo "stabilizers --full: exit $rc, wall $((SECONDS - start)) s"
mkdir -p "$out/full"
cp "$out"/full.run/*.json "$out"/full.run/*.md "$out"/full.run/*.png "$out/full" 2>/dev/null
echo "finished chunks: $(find "$out/full.run/.chunks" -type f 2>/dev/null | wc -l)"

echo "== 2. loo_stability against its roof"
timeout 90 python benchmarks/bench_loo.py --sizes 1024x64 4096x64 --dtypes float64 --repeats 1

echo "== 3. verify --study all, replicates ladder"
timeout 170 python benchmarks/bench_verify.py --study all --budget-s 140 --ladder 20
