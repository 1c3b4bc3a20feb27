#!/usr/bin/env bash
# Every GPU figure of the sweep-engine issue in one device call (about 9 minutes):
#   PYTHONPATH=. bash benchmarks/device_check.sh
# 1. the public loo_stability path against its roof at n >= 1024 (float64, both losses);
# 2. `stabtheory verify --study all` at the default replicates, then at 20 while the budget lasts
#    (compilation cache off: every run pays its compilations, as on a new machine).
# Compare with the same script's CPU figures only through the printed backend and device.
set -u
cd "$(dirname "$0")/.."
python benchmarks/bench_loo.py --sizes 1024x64 4096x64 --dtypes float64 --repeats 1
python benchmarks/bench_verify.py --study all --budget-s 420 --ladder 20
