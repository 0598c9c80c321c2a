#!/usr/bin/env bash
# The GPU check (issue 36) as one prepared script: GPU time comes in short spans, so this does everything
# in one run and writes what it measured into $OUT (the device tool brings that folder back):
#   junit.xml        the default test suite on CUDA (pytest -n), every failure named
#   step.txt         bench_step: sweeplab's step against a plain loop, on CUDA
#   pack.txt         bench_pack: 16 MNIST-1D and 16 CIFAR-10 MLP trials, pack 16 against pack 1 (and 64)
#   startup.txt      bench_startup: start-up against `import torch`, one-step trials
#   summary.txt      the machine, each step's exit status and time
#
# Here, first (no GPU needed):
#   bash bench/gpu_check.sh prepare      # the wheels the device image lacks, into .whl/; the data into data/
#   DRY=1 bash bench/gpu_check.sh        # every step at a tiny size on this CPU: no typo survives to the GPU
# On the device machine (the `run` tool): command "bash bench/gpu_check.sh", carry [".whl", "data"].
set -uo pipefail
cd "$(dirname "$0")/.."

# sweeplab's dependencies missing from the device image (KINDS.md lists what it has), at this project's
# versions; antlr4 4.9.3 (Hydra's parser runtime) exists only as a source archive: built into a wheel here
WHEELS=(hydra-core==1.3.8 omegaconf==2.3.1 optuna==5.1.0 sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3
  colorlog==6.12.0 cmaes==0.13.1 mnist1d==0.0.2.post1 hatchling pathspec trove-classifiers)
CIFAR=../shared/data/cifar10-jpeg/cifar10-jpeg.tar.gz

if [ "${1:-}" = prepare ]; then
  set -e
  mkdir -p .whl data
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >>.git/info/exclude
  platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${WHEELS[@]}"
  python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3
  cp "$CIFAR" data/  # data/ is git-ignored: it travels only when `carry` names it
  du -sh .whl data
  exit 0
fi

out=${OUT:-gpu_check_out}
mkdir -p "$out"
say() { echo "$*" | tee -a "$out/summary.txt"; }
step() {  # step NAME SECONDS COMMAND...: one step, bounded, its output to $out/NAME.txt
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  local code=$?
  say "$name: exit $code in $((SECONDS - start)) s"
  tail -n 5 "$out/$name.txt"
}

if [ "${DRY:-0}" = 1 ]; then  # this machine's environment, the CPU, tiny sizes
  py=.venv/bin/python device=cpu steps=40 repeats=1 workers=0 suite=(tests/train/test_train.py tests/models/test_models.py)
else
  python3 -m venv --system-site-packages /tmp/gpu_venv
  /tmp/gpu_venv/bin/pip install -q --no-index --no-deps .whl/*.whl
  /tmp/gpu_venv/bin/pip install -q --no-index --no-deps --no-build-isolation -e .
  py=/tmp/gpu_venv/bin/python device=cuda steps=1000 repeats=3 workers=12 suite=()
  nvidia-smi >"$out/nvidia-smi.txt" 2>&1
fi
export SWEEPLAB_DATA_DIR=$PWD/data PYTHONUNBUFFERED=1
say "gpu_check on $(hostname), $($py -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")')"

xdist=()
[ "$workers" -gt 0 ] && xdist=(-n "$workers")
step suite 200 "$py" -m pytest -q -rf "${xdist[@]}" --junitxml="$out/junit.xml" "${suite[@]}"
step step 60 "$py" bench/bench_step.py --device "$device" --steps "$steps" --repeats "$repeats"
step pack 180 "$py" bench/bench_pack.py --packs-only --device "$device" --steps "$steps" \
  --cifar data/cifar10-jpeg.tar.gz --cifar-steps "$steps" --big $([ "$device" = cuda ] && echo 64 || echo 0)
step startup 45 "$py" bench/bench_startup.py --repeats "$repeats"
say "done"
