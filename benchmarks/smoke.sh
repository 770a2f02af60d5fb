#!/usr/bin/env bash
# Run every benchmarks/*.py with --smoke, one after the other, and fail on the first that
# fails -- or that has no --smoke mode. CI runs this after pytest (.ci/run); run it yourself
# with the venv active:  benchmarks/smoke.sh
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
shopt -s nullglob
scripts=(*.py)
if [ ${#scripts[@]} -eq 0 ]; then
    echo "benchmarks/smoke.sh: no benchmarks/*.py found" >&2
    exit 1
fi
ran=0
for script in "${scripts[@]}"; do
    # A file with neither a __main__ block nor argparse is a module the benchmarks import
    # (stats.py), tested in tests/benchmarks; every script that runs needs a --smoke mode.
    if ! grep -qE "^if __name__ == [\"']__main__[\"']" "$script" && ! grep -q argparse "$script"; then
        echo "=== benchmarks/$script: a module, not a script (tested by pytest)"
        continue
    fi
    # argparse would reject an unknown --smoke, but a script without argparse would ignore it
    # and run in full: require the flag by name.
    if ! grep -qE -- "[\"']--smoke[\"']" "$script"; then
        echo "benchmarks/$script has no --smoke mode: every benchmark needs one (see" \
             "benchmarks/README.md)" >&2
        exit 1
    fi
    echo "=== benchmarks/$script --smoke"
    start=$SECONDS
    python "$script" --smoke
    echo "=== benchmarks/$script --smoke: ok in $((SECONDS - start)) s"
    ran=$((ran + 1))
done
echo "all $ran benchmark smoke runs passed"
