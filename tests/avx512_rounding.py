"""Whether fastelbo's kernels run their AVX-512 code path in this process, for the test whose bound
holds with AVX2's rounding but was measured to fail with AVX-512's (a 2-core AMD Zen 4,
2026-12-06): it is expected to fail there, with the diagnosis as the reason, until the defect it
names is mended. Elsewhere it runs, and fails, as any test."""

import fastelbo

KERNELS_AVX512 = "AVX512" in fastelbo.build_info()["simd"]
