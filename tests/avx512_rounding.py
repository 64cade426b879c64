"""Which AVX-512 code paths this process runs, for the few tests whose premise or bound holds with
AVX2's rounding but was measured to fail with AVX-512's (a 2-core AMD Zen 4, 2026-12-06): they are
expected to fail there, with the diagnosis as the reason, until the defect each names is mended.
Elsewhere they run, and fail, as any test."""

import threadpoolctl

import fastelbo

# OpenBLAS's core types with AVX-512 kernels.
_AVX512_OPENBLAS_CORES = {"skylakex", "cooperlake", "sapphirerapids"}

OPENBLAS_AVX512 = any(
    info.get("internal_api") == "openblas"
    and str(info.get("architecture", "")).lower() in _AVX512_OPENBLAS_CORES
    for info in threadpoolctl.threadpool_info()
)
KERNELS_AVX512 = "AVX512" in fastelbo.build_info()["simd"]
