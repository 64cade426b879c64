#!/usr/bin/env bash
# The GPU check of the CUDA backend, for a fresh GPU machine without network: installs a fastelbo
# wheel built with FASTELBO_CUDA=ON (or builds one here, which needs the build requirements
# installed), runs the GPU tests and the measurements of bench/gpu_report.py, and writes everything
# to one folder.
#
#   bash bench/gpu_check.sh [OUT]          (OUT defaults to $OUT, else gpu-results)
#
# The wheel: $FASTELBO_WHEEL, else the first *.whl in the folder above this script or its dist/.
# Build one on any machine with nvcc (no GPU needed) with
#   pip wheel --no-deps -w dist . -Ccmake.define.FASTELBO_CUDA=ON -Ccmake.define.FASTELBO_CPU_TARGETS=v3
# Sized for about 5 minutes on one H200 (the CPU baselines take most of it).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-${OUT:-gpu-results}}" && cd "${1:-${OUT:-gpu-results}}" && pwd)
python=${PYTHON:-python3}
site=$(mktemp -d)
exec > >(tee "$out/gpu_check.log") 2>&1
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true

wheel=${FASTELBO_WHEEL:-$(ls "$root"/*.whl "$root"/dist/*.whl 2>/dev/null | head -1)}
if [ -z "$wheel" ]; then
  echo "no wheel: building one (FASTELBO_CUDA=ON)"
  "$python" -m pip wheel --no-build-isolation --no-deps -w "$root/dist" "$root" \
    -Ccmake.define.FASTELBO_CUDA=ON -Ccmake.define.FASTELBO_CPU_TARGETS=v3 || exit 1
  wheel=$(ls "$root"/dist/*.whl | head -1)
fi
"$python" -m pip install --quiet --no-deps --no-index --target "$site" "$wheel" || exit 1
export PYTHONPATH="$site"
# The wheel is not repaired (auditwheel): where the system lacks the OpenMP runtime, use a copy
# placed beside the wheel in lib/.
if ! "$python" -c "import ctypes; ctypes.CDLL('libgomp.so.1')" 2>/dev/null && [ -d "$root/lib" ]; then
  export LD_LIBRARY_PATH="$root/lib:${LD_LIBRARY_PATH:-}"
fi
"$python" -c "import fastelbo, json; print(json.dumps(fastelbo.build_info(), indent=1))" | tee "$out/build_info.json"

status=0
# The GPU tests, then the shared row maths on the CPU, against the installed wheel.
(cd "$root" && timeout 150 "$python" -m pytest -q -p no:cacheprovider --junitxml="$out/pytest.xml" \
  tests/test_cuda.py tests/test_row_maths.py) || status=1
SCIPY_ARRAY_API=1 timeout 230 "$python" "$root/bench/gpu_report.py" --out "$out" || status=1
date -u
exit $status
