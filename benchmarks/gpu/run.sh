#!/usr/bin/env bash
# The whole GPU check, for the lent H200 machine (JAX with CUDA and PyTorch there, no
# TensorFlow, no network), from the repository root:
#
#     bash benchmarks/gpu/run.sh
#
# It needs benchmarks/gpu/wheels/carry*/ (made here by wheelhouse.sh, git-ignored, carried
# to the machine: see wheels/CARRY.txt) and writes everything to $OUT (default ./gpu-out):
#   timings.txt        each step: start date, exit code, seconds (124/137: its timeout hit)
#   summary.txt        the leaderboards' verdict lines and the perf ratios, the one file to read
#   logs/STEP.log      each step's output
#   env/               nvidia-smi, jax.devices(), pip list before and after, Python version
#   leaderboards/      smoke.md, BUDGET.md (+ .csv), perf-resnet.json, perf-convmixer.json
#   runs/              the run directories (resumable: run this script again to go on)
#
# Environment: ARCHBENCH_GPU_BUDGET (default standard; smoke to rehearse on a CPU),
# ARCHBENCH_GPU_SECONDS (default 560: the whole script's deadline; the full-registry
# step gets what the other steps leave, the rest of the registry is for a rerun, which
# resumes), ARCHBENCH_GPU_PERF_SECONDS (default 75, each perf step), PYTHON (default python3).
# Each step runs even when an earlier one failed; the script exits non-zero if any did.
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
OUT=${OUT:-./gpu-out}
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
BUDGET=${ARCHBENCH_GPU_BUDGET:-standard}
DEADLINE=${ARCHBENCH_GPU_SECONDS:-560}
PYTHON=${PYTHON:-python3}
export ROOT OUT BUDGET PYTHON  # for the steps that are functions of this script
mkdir -p "$OUT/logs" "$OUT/env" "$OUT/leaderboards"

export KERAS_BACKEND=jax
export WANDB_MODE=offline WANDB_SILENT=true WANDB_DISABLE_GIT=true
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # archbench from the checkout
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1

STARTED=$SECONDS
FAILED=0
: >"$OUT/timings.txt"
echo "# step  exit  seconds  timeout  started (budget $BUDGET, deadline ${DEADLINE}s)" >>"$OUT/timings.txt"

# step NAME TIMEOUT COMMAND...: run COMMAND under `timeout` (SIGTERM, which archbench
# handles by keeping what it finished, then SIGKILL 30 s later), its output to
# logs/NAME.log and the terminal, and a line in timings.txt.
step() {
    local name=$1 limit=$2 begin=$SECONDS rc when
    shift 2
    when=$(date -Is)
    echo "=== $when $name (timeout ${limit}s): $*" | tee -a "$OUT/logs/$name.log"
    if declare -F "$1" >/dev/null; then  # a function of this script: in a bash of its own
        timeout -k 30 "$limit" bash -c '"$@"' "$name" "$@" 2>&1 | tee -a "$OUT/logs/$name.log"
    else
        timeout -k 30 "$limit" "$@" 2>&1 | tee -a "$OUT/logs/$name.log"
    fi
    rc=${PIPESTATUS[0]}
    printf '%-18s %4s %8s %8s  %s\n' "$name" "$rc" "$((SECONDS - begin))" "$limit" "$when" \
        | tee -a "$OUT/timings.txt"
    [ "$rc" -eq 0 ] || FAILED=1
    return 0
}

left() { echo $((DEADLINE - (SECONDS - STARTED))); }

# --- (a) install what the machine lacks, from the carried wheels only ---------------------
install() {
    local links=() dir missing=0 pkgs
    for dir in "$ROOT"/benchmarks/gpu/wheels/carry*/; do
        [ -d "$dir" ] && links+=(--find-links "$dir")
    done
    if [ ${#links[@]} -eq 0 ]; then
        echo "no benchmarks/gpu/wheels/carry*/ here: carry them (see wheels/CARRY.txt)"
        return 1
    fi
    manifest=$(ls "$ROOT"/benchmarks/gpu/wheels/carry*/MANIFEST.txt 2>/dev/null | head -1)
    if [ -n "$manifest" ]; then  # everything wheelhouse.sh made must have come
        while read -r path; do
            [ -e "$ROOT/benchmarks/gpu/wheels/$path" ] || { echo "missing: $path"; missing=1; }
        done <"$manifest"
        [ $missing -eq 0 ] && echo "all $(wc -l <"$manifest") files of MANIFEST.txt are here"
    fi
    "$PYTHON" -m pip --version || return 1
    pkgs=(keras keras-tuner six wandb pandas tabulate matplotlib pillow tqdm scikit-learn)
    # Already-installed packages that satisfy the requirements are kept (numpy, scipy,
    # ml_dtypes: JAX's). One resolution for all; if that fails, package by package, so
    # that one that cannot be had does not hold back the others.
    if ! "$PYTHON" -m pip install --no-index "${links[@]}" "${pkgs[@]}"; then
        echo "--- together failed; one by one"
        for p in "${pkgs[@]}"; do
            "$PYTHON" -m pip install --no-index "${links[@]}" "$p" || { echo "FAILED: $p"; missing=1; }
        done
    fi
    "$PYTHON" -m pip check
    "$PYTHON" - <<'EOF' || return 1
import importlib, sys
for name in ("keras", "keras_tuner", "wandb", "pandas", "tabulate", "matplotlib", "PIL",
             "tqdm", "sklearn", "scipy", "numpy", "jax"):
    module = importlib.import_module(name)
    print(f"{name:12s} {getattr(module, '__version__', '?')}")
try:
    import tensorflow  # noqa: F401
    print("note: TensorFlow is importable here (a JAX run does not import it)")
except ImportError:
    print("tensorflow   not importable (as expected)")
EOF
    return $missing
}
export -f install
"$PYTHON" -m pip list >"$OUT/env/pip-before.txt" 2>&1
step install 150 install
"$PYTHON" -m pip list >"$OUT/env/pip-after.txt" 2>&1

# Fashion-MNIST from the carried copy, through a Keras home of our own (both archbench
# run and benchmarks.cli.perf look there before trying to download).
DATA=$(ls -d "$ROOT"/benchmarks/gpu/wheels/carry*/fashion-mnist 2>/dev/null | head -1)
if [ -n "$DATA" ]; then
    export KERAS_HOME=${TMPDIR:-/tmp}/archbench-gpu-keras-home
    mkdir -p "$KERAS_HOME/datasets"
    ln -sfn "$DATA" "$KERAS_HOME/datasets/fashion-mnist"
    echo "data: $DATA via KERAS_HOME=$KERAS_HOME" | tee -a "$OUT/timings.txt"
else
    echo "data: no carried Fashion-MNIST; archbench will look in ~/.keras and /usr/share/datasets" \
        | tee -a "$OUT/timings.txt"
fi

# --- (b) the machine -----------------------------------------------------------------------
machine() {
    "$PYTHON" --version
    uname -a
    nproc
    free -g
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi | tee "$OUT/env/nvidia-smi.txt"
        nvidia-smi -q >"$OUT/env/nvidia-smi-q.txt" 2>&1
    else
        echo "no nvidia-smi" | tee "$OUT/env/nvidia-smi.txt"
    fi
    "$PYTHON" -c "import jax; print(jax.__version__); print(jax.devices()); print(jax.default_backend())" \
        | tee "$OUT/env/jax-devices.txt"
}
export -f machine
step machine 90 machine

# --- (c) smoke: two architectures, seconds ------------------------------------------------
# (its own run directory: with ARCHBENCH_GPU_BUDGET=smoke the registry step would otherwise
# resume this one, and a rerun's smoke step would re-measure the whole registry's models)
step smoke 120 "$PYTHON" -m benchmarks.cli run --backend jax --budget smoke -a mlp,simple_cnn \
    -o "$OUT/runs" --name fashion_mnist-smoke-check --wandb-mode offline

# --- (d) the whole registry under the budget, with what the perf steps leave ------------
PERF_LIMIT=${ARCHBENCH_GPU_PERF_SECONDS:-75}  # each: JAX start, data, three compilations
limit=$(( $(left) - 2 * PERF_LIMIT - 15 ))
[ "$limit" -lt 30 ] && limit=30
# by epochs: standard is a budget of time (30 s trials) sized for a 2-core CPU, where
# 9 x 240 s would outlast the machine's loan; on a GPU its epochs take seconds
step registry "$limit" "$PYTHON" -m benchmarks.cli run --backend jax --budget "$BUDGET" \
    --budget-by epochs -o "$OUT/runs" --wandb-mode offline

# --- (e) float32 against bfloat16 (and float16 mixed precision) training speed ---------------
for arch in resnet convmixer; do
    step "perf-$arch" "$PERF_LIMIT" "$PYTHON" -m benchmarks.cli.perf --backend jax --only d --repeats 1 \
        -a "$arch" --budget "$BUDGET" -o "$OUT/perf-$arch"
done

# --- (f) the results where they are easy to find -------------------------------------------
collect() {
    local dir name
    for dir in "$OUT"/runs/*/; do
        name=$(basename "$dir")
        for f in leaderboard.md leaderboard.csv; do
            [ -f "$dir$f" ] && cp "$dir$f" "$OUT/leaderboards/$name-$f"
        done
    done
    for arch in resnet convmixer; do
        [ -f "$OUT/perf-$arch/perf.json" ] && cp "$OUT/perf-$arch/perf.json" "$OUT/leaderboards/perf-$arch.json"
    done
    {
        echo "# GPU check, budget $BUDGET, $(date -Is)"
        cat "$OUT/env/jax-devices.txt" 2>/dev/null
        for f in "$OUT"/leaderboards/*-leaderboard.md; do
            [ -f "$f" ] || continue
            echo
            echo "## $(basename "$f")"
            grep -E '^- \*\*(Dataset|Backend|Run)\*\*' "$f"
            awk '/^## Verdict/{v=1; next} /^## /{v=0} v && /^- /' "$f"
        done
        for f in "$OUT"/leaderboards/perf-*.json; do
            [ -f "$f" ] || continue
            echo
            echo "## $(basename "$f")"
            "$PYTHON" -c "import json,sys; d=json.load(open(sys.argv[1]))['d_accelerator']; print(json.dumps(d))" "$f"
        done
        echo
        cat "$OUT/timings.txt"
    } >"$OUT/summary.txt"
    cat "$OUT/summary.txt"
}
export -f collect
step collect 30 collect

echo "total $((SECONDS - STARTED)) s, finished $(date -Is)" | tee -a "$OUT/timings.txt"
exit $FAILED
