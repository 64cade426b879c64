"""Runtime CPU dispatch: the loader picks the best kernel build the CPU and OS support, a forced
target works or fails clearly, and every build gives the same answers.

Every test that runs a target checks first that this CPU supports it and is skipped, with the
reason, when it does not: running a build for instructions the CPU lacks would kill the process.
"""

import importlib
import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import fastelbo
from fastelbo import _core, _cpu_dispatch

BUILT = _cpu_dispatch.built_targets()
SUPPORTED = _cpu_dispatch.supported_targets()
RUNNABLE = [t for t in BUILT if t in SUPPORTED]
X86_64 = platform.machine().lower() in ("x86_64", "amd64")

# The x86-64 psABI levels as the Linux kernel names their features in /proc/cpuinfo (it lists AVX
# and AVX-512 only when it saves their registers): an oracle independent of our CPUID code.
CPUINFO_FLAGS_OF_LEVEL = {
    "v2": {"cx16", "lahf_lm", "popcnt", "pni", "ssse3", "sse4_1", "sse4_2"},
    "v3": {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave"},
    "v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


def _cpuinfo_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _require(target):
    if target not in BUILT:
        pytest.skip(f"this installation has no {target} build (built: {', '.join(BUILT)})")
    if target not in SUPPORTED:
        pytest.skip(f"this CPU lacks x86-64-{target}; running its build would be an illegal instruction")


# ------------------------------------------------------------------------------ choosing


def test_choose_target_takes_the_best_built_target_the_cpu_supports():
    assert _cpu_dispatch.choose_target(["v4", "v3", "v2"], ["v3", "v2"]) == "v3"
    assert _cpu_dispatch.choose_target(["v4", "v3", "v2"], ["v4", "v3", "v2"]) == "v4"
    assert _cpu_dispatch.choose_target(["portable"], ["native", "portable"]) == "portable"
    assert _cpu_dispatch.choose_target(["native"], ["native", "portable"]) == "native"


def test_choose_target_honours_a_forced_target():
    assert _cpu_dispatch.choose_target(["v4", "v3", "v2"], ["v4", "v3", "v2"], "v2") == "v2"


@pytest.mark.parametrize(
    ("built", "supported", "requested", "message"),
    [
        (["v4", "v3", "v2"], ["v3", "v2"], "v4", "lacks the instructions of x86-64-v4"),
        (["v3", "v2"], ["v4", "v3", "v2"], "v4", "has no kernel build for it"),
        (["v3", "v2"], ["v3", "v2"], "avx9", "is not a CPU target"),
        (["v4", "v3"], ["v2"], None, "none of which this CPU supports"),
    ],
)
def test_choose_target_refuses_what_cannot_run(built, supported, requested, message):
    with pytest.raises(ImportError, match=message):
        _cpu_dispatch.choose_target(built, supported, requested)


def test_loaded_build_is_the_one_the_loader_chooses():
    expected = _cpu_dispatch.choose_target(BUILT, SUPPORTED, os.environ.get("FASTELBO_CPU") or None)
    info = fastelbo.build_info()
    assert info["cpu_target"] == _core.BUILD_INFO["cpu_target"] == expected
    assert info["cpu_targets_built"] == BUILT
    assert info["cpu_targets_supported"] == SUPPORTED
    assert info["native_isa"] == (expected == "native")


@pytest.mark.skipif(not X86_64, reason="x86-64 levels exist only on x86-64")
def test_detected_levels_match_the_kernels_cpuinfo_flags():
    flags = _cpuinfo_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo to compare with")
    expected, needed = [], set()
    for level in _cpu_dispatch.X86_64_LEVELS:
        needed |= CPUINFO_FLAGS_OF_LEVEL[level]
        if needed <= flags:
            expected.append(level)
    from fastelbo import _cpu_features

    assert _cpu_features.supported_x86_64_levels() == expected


@pytest.mark.skipif(not X86_64, reason="x86-64 builds hold one module per level")
def test_x86_64_installations_hold_every_level_unless_built_native():
    assert BUILT == ["native"] or BUILT == ["v4", "v3", "v2"]


# ------------------------------------------------------------------------------ forcing


@pytest.mark.parametrize("target", _cpu_dispatch.TARGETS)
def test_forced_target_is_loaded_and_reported(target):
    _require(target)
    script = "import fastelbo, json; print(json.dumps(fastelbo.build_info()))"
    env = {**os.environ, "FASTELBO_CPU": target}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["cpu_target"] == target


def test_forcing_a_target_that_is_not_built_fails_at_import_with_the_reason():
    missing = next((t for t in _cpu_dispatch.TARGETS if t not in BUILT), None)
    if missing is None:
        pytest.skip("every target is built")
    env = {**os.environ, "FASTELBO_CPU": missing}
    out = subprocess.run([sys.executable, "-c", "import fastelbo"], env=env, capture_output=True, text=True)
    assert out.returncode != 0
    assert f"FASTELBO_CPU={missing!r}: this installation has no kernel build for it" in out.stderr


# ------------------------------------------------------------------------------ same answers


def _kernel_outputs(module, covariance_type, n_threads):
    """Every output of one E-step pass of ``module``'s kernel on a fixed float64 problem."""
    rng = np.random.default_rng(7)
    n, d, k = 3000, 9, 5
    X = rng.standard_normal((n, d)) + rng.integers(0, 3, size=(n, 1)) * 2.5
    means = X[rng.choice(n, k, replace=False)]
    shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}[covariance_type]
    if covariance_type in ("full", "tied"):
        factors = np.linalg.cholesky(np.linalg.inv(np.cov(X.T) + np.eye(d)))
        precisions_cholesky = np.broadcast_to(factors, shape).copy()
    else:
        precisions_cholesky = rng.uniform(0.5, 1.5, size=shape)
    out = module.gaussian_mixture_pass(
        X,
        rng.uniform(0.5, 2.0, size=n),
        np.log(np.full(k, 1.0 / k)),
        means,
        precisions_cholesky,
        means + 0.1,
        None,
        covariance_type,
        return_log_norm=True,
        return_responsibilities=True,
        return_labels=True,
        n_threads=n_threads,
    )
    outputs = {name: np.asarray(value) for name, value in out.items()}
    # The k-means kernels of the initialisation, on the same rows.
    seeds = module.kmeans_plusplus(X, None, k, 3, 11, n_threads=n_threads)
    labels, centers, inertia, n_iter = module.lloyd_kmeans(X, None, X[seeds], 5, 0.0, n_threads=n_threads)
    outputs.update(
        kmeans_seeds=np.asarray(seeds),
        kmeans_labels=np.asarray(labels),
        kmeans_centers=np.asarray(centers),
        kmeans_inertia=np.asarray(inertia),
    )
    return outputs


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("target", _cpu_dispatch.TARGETS)
def test_each_build_is_bitwise_identical_for_any_thread_count(target, covariance_type):
    _require(target)
    module = importlib.import_module(f"fastelbo._core_{target}")
    one = _kernel_outputs(module, covariance_type, 1)
    for n_threads in (2, 3):
        other = _kernel_outputs(module, covariance_type, n_threads)
        for name in one:
            np.testing.assert_array_equal(
                other[name], one[name], err_msg=f"{target} {name} n_threads={n_threads}"
            )


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_builds_agree_to_1e_12(covariance_type):
    if len(RUNNABLE) < 2:
        pytest.skip(
            f"fewer than two builds run here (built: {', '.join(BUILT)}; supported: {', '.join(SUPPORTED)})"
        )
    results = {
        t: _kernel_outputs(importlib.import_module(f"fastelbo._core_{t}"), covariance_type, 2)
        for t in RUNNABLE
    }
    first, *others = RUNNABLE
    for target in others:
        for name, value in results[first].items():
            if name in ("labels", "kmeans_seeds", "kmeans_labels"):
                np.testing.assert_array_equal(results[target][name], value, err_msg=f"{target} vs {first}")
            else:
                scale = np.max(np.abs(value)) if np.size(value) else 0.0
                np.testing.assert_allclose(
                    results[target][name],
                    value,
                    rtol=1e-12,
                    atol=1e-12 * scale,
                    err_msg=f"{name}: {target} vs {first}",
                )


def _fitted_in_subprocess(target):
    script = (
        "import json, numpy as np\n"
        "from sklearn.datasets import load_digits\n"
        "from fastelbo import FastGMM\n"
        "X = load_digits().data\n"
        "g = FastGMM(n_components=4, covariance_type='diag', init_params='random_from_data',\n"
        "            max_iter=2, tol=0, random_state=0).fit(X)\n"
        "print(json.dumps({'means': g.means_.tolist(), 'lower_bound': g.lower_bound_}))\n"
    )
    env = {**os.environ, "FASTELBO_CPU": target}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_fits_agree_across_builds():
    # Two EM iterations from rows drawn as means: the kernels agree to round-off (above), and every
    # further iteration, or a k-means start, can only amplify that round-off.
    if len(RUNNABLE) < 2:
        pytest.skip(
            f"fewer than two builds run here (built: {', '.join(BUILT)}; supported: {', '.join(SUPPORTED)})"
        )
    fits = {t: _fitted_in_subprocess(t) for t in RUNNABLE}
    first, *others = RUNNABLE
    for target in others:
        np.testing.assert_allclose(fits[target]["lower_bound"], fits[first]["lower_bound"], rtol=1e-12)
        np.testing.assert_allclose(fits[target]["means"], fits[first]["means"], rtol=1e-10, atol=1e-10)
