"""FastGMM on a GPU against scikit-learn's array-API GaussianMixture on PyTorch, the PyTorch EM of
``torch_em.py`` and FastGMM on the CPU, on the two cases of the CUDA issue, in one run:

- diag, N=4M, D=64, K=1,024, float32;
- full, N=1M, D=64, K=256, float32.

Every system starts from the same parameters (the generating means, unit variances, equal weights)
and the figure is seconds per EM iteration: the time of ``1 + R`` iterations minus that of 1 (which
cancels set-up, the copy to the GPU and FastGMM's final pass), divided by R. Also measured in the
same run: the GPU's float32 matrix-product throughput (PyTorch, TF32 off) and the fraction of it
that FastGMM's diag pass (E-step and statistics) reaches, counting the FLOPs of the equivalent GEMM
formulation, 8 N K D (log-joints as [x, x^2] times a (2D x K) matrix, moments as Q^T [x, x^2]).
The moments skip terms whose responsibility is exactly 0, which on well-separated clusters is most
of them; so the fraction is measured twice: at the benchmark's start ("clustered") and with
components broad enough that every responsibility is non-zero ("dense", all the arithmetic done),
which is the honest figure.

Usage: ``python bench/gpu_report.py --out DIR [--quick]`` (``bench/report.py --device cuda`` runs
it). Writes ``gpu_report.json`` and ``gpu_report.md`` to DIR and prints the table.
"""

from __future__ import annotations

import os

# scikit-learn's array-API dispatch needs SciPy's array-API mode, set before SciPy is imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

BENCH_DIR = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

CASES = {
    "diag": {"n_samples": 4_000_000, "n_features": 64, "n_components": 1024, "covariance_type": "diag"},
    "full": {"n_samples": 1_000_000, "n_features": 64, "n_components": 256, "covariance_type": "full"},
}
QUICK_CASES = {
    "diag": {"n_samples": 200_000, "n_features": 64, "n_components": 256, "covariance_type": "diag"},
    "full": {"n_samples": 100_000, "n_features": 64, "n_components": 64, "covariance_type": "full"},
}


def make_case(torch, n_samples, n_features, n_components, covariance_type, seed=0):
    """Clustered float32 data (generated on the GPU) and the common start."""
    generator = torch.Generator(device="cuda").manual_seed(seed)
    centres = 4.0 * torch.randn(n_components, n_features, device="cuda", generator=generator)
    labels = torch.randint(0, n_components, (n_samples,), device="cuda", generator=generator)
    X = centres[labels] + torch.randn(n_samples, n_features, device="cuda", generator=generator)
    X_host = X.cpu().numpy()
    del X, labels
    means = centres.cpu().numpy().astype(np.float64)
    weights = np.full(n_components, 1.0 / n_components)
    if covariance_type == "full":
        covariances = np.broadcast_to(np.eye(n_features), (n_components, n_features, n_features)).copy()
    else:
        covariances = np.ones((n_components, n_features))
    return X_host, weights, means, covariances


def per_iteration(run, repeats):
    """(seconds per iteration, lower bounds of the longer run) from run(n_iter) -> lower bounds,
    after one untimed run (first-use costs: CUDA context, module loading, allocator pools)."""
    run(1)
    start = time.perf_counter()
    run(1)
    one = time.perf_counter() - start
    start = time.perf_counter()
    bounds = run(1 + repeats)
    more = time.perf_counter() - start
    return (more - one) / repeats, bounds


def fastelbo_fit(X, weights, means, covariances, covariance_type, device):
    from fastelbo import FastGMM
    from fastelbo.mixture._covariance import precisions_cholesky_from_covariances

    precisions_cholesky = precisions_cholesky_from_covariances(covariances, covariance_type)
    if covariance_type == "full":
        precisions = np.einsum("kij,klj->kil", precisions_cholesky, precisions_cholesky)
    else:
        precisions = precisions_cholesky**2

    def run(n_iter):
        gmm = FastGMM(
            len(weights),
            covariance_type=covariance_type,
            weights_init=weights,
            means_init=means,
            precisions_init=precisions,
            max_iter=n_iter,
            tol=0.0,
            device=device,
        )
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gmm.fit(X)
        return list(gmm.lower_bounds_)

    return run


def torch_em_fit(torch, X_gpu, weights, means, covariances, covariance_type):
    import torch_em

    def run(n_iter):
        args = [torch.as_tensor(a, dtype=torch.float32, device="cuda") for a in (weights, means, covariances)]
        _, bounds = torch_em.fit(X_gpu, *args, covariance_type, n_iter)
        torch.cuda.synchronize()
        return bounds

    return run


def sklearn_array_api_fit(torch, X_gpu, weights, means, covariances, covariance_type):
    import sklearn
    from sklearn.mixture import GaussianMixture

    if covariance_type == "full":
        precisions = np.linalg.inv(covariances)
    else:
        precisions = 1.0 / covariances

    def run(n_iter):
        with sklearn.config_context(array_api_dispatch=True):
            gmm = GaussianMixture(
                len(weights),
                covariance_type=covariance_type,
                init_params="random",  # the only kind with array-API support; the *_init given win
                weights_init=torch.as_tensor(weights, dtype=torch.float32, device="cuda"),
                means_init=torch.as_tensor(means, dtype=torch.float32, device="cuda"),
                precisions_init=torch.as_tensor(precisions, dtype=torch.float32, device="cuda"),
                max_iter=n_iter,
                tol=0.0,
            )
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gmm.fit(X_gpu)
            torch.cuda.synchronize()
        return [float(gmm.lower_bound_)]

    return run


def gemm_throughput(torch, size=8192, repeats=10):
    """float32 TFLOP/s of an n x n x n matrix product, TF32 off."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    a = torch.randn(size, size, device="cuda")
    b = torch.randn(size, size, device="cuda")
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    return 2.0 * size**3 / seconds / 1e12


def diag_pass_throughput(X, weights, means, covariances, repeats=3):
    """TFLOP/s of FastGMM's diag pass on the GPU (E-step and statistics), 8 N K D FLOPs per pass."""
    from fastelbo import FastGMM
    from fastelbo.mixture._covariance import precisions_cholesky_from_covariances
    from fastelbo.mixture._cuda_backend import discard_device_rows, gaussian_pass

    gmm = FastGMM(len(weights), covariance_type="diag", device="cuda")
    gmm.weights_ = weights.astype(np.float32)
    gmm.means_ = means.astype(np.float32)
    gmm.precisions_cholesky_ = precisions_cholesky_from_covariances(covariances, "diag").astype(np.float32)
    gaussian_pass(gmm, X, moments=True)  # copies X to the GPU and keeps it
    start = time.perf_counter()
    for _ in range(repeats):
        gaussian_pass(gmm, X, moments=True)
    seconds = (time.perf_counter() - start) / repeats
    discard_device_rows(gmm)
    N, D = X.shape
    return seconds, 8.0 * N * len(weights) * D / seconds / 1e12


def kernel_profile(torch, function, top=12):
    """{kernel name: milliseconds} of the CUDA kernels launched by function() (any library's, as
    CUPTI sees them), largest first."""
    from torch.profiler import ProfilerActivity, profile

    function()  # warm
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        function()
        torch.cuda.synchronize()
    totals = {}
    for event in prof.key_averages():
        device_us = getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0)
        if device_us:
            totals[event.key[:90]] = totals.get(event.key[:90], 0.0) + device_us / 1e3
    return dict(sorted(totals.items(), key=lambda item: -item[1])[:top])


def fastelbo_pass_function(X, weights, means, covariances, covariance_type):
    """One FastGMM pass with moments on the GPU, X already there: returns the callable."""
    from fastelbo import FastGMM
    from fastelbo.mixture._covariance import precisions_cholesky_from_covariances
    from fastelbo.mixture._cuda_backend import gaussian_pass

    gmm = FastGMM(len(weights), covariance_type=covariance_type, device="cuda")
    gmm.weights_ = weights.astype(np.float32)
    gmm.means_ = means.astype(np.float32)
    gmm.precisions_cholesky_ = precisions_cholesky_from_covariances(covariances, covariance_type).astype(
        np.float32
    )
    return lambda: gaussian_pass(gmm, X, moments=True)


def measure(run, repeats):
    try:
        seconds, bounds = per_iteration(run, repeats)
        return {"seconds_per_iteration": seconds, "lower_bound": float(bounds[-1]) if bounds else None}
    except Exception as error:  # a competitor that cannot run this case is reported, not fatal
        traceback.print_exc()
        return {"error": f"{type(error).__name__}: {str(error)[:300]}"}


def measure_on_gpu(
    torch, name, results, system, repeats, fit, X, weights, means, covariances, covariance_type
):
    """``results[system]``: :func:`measure` of ``fit(torch, X on the GPU, start...)`` (the signature
    of :func:`torch_em_fit` and :func:`sklearn_array_api_fit`); the device copy of X is freed
    afterwards, so the next system starts with the GPU's memory as before."""
    X_gpu = torch.as_tensor(X, device="cuda")
    results[system] = measure(fit(torch, X_gpu, weights, means, covariances, covariance_type), repeats)
    print(name, system, results[system], flush=True)
    del X_gpu
    torch.cuda.empty_cache()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--quick", action="store_true", help="small cases (a smoke test)")
    parser.add_argument("--cpu-repeats", type=int, default=1)
    parser.add_argument("--gpu-repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import sklearn
    import torch

    import fastelbo

    args.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    report = {
        "device": torch.cuda.get_device_name(0),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "scikit_learn": sklearn.__version__,
        "fastelbo": fastelbo.build_info(),
        "gemm_tflops_fp32": gemm_throughput(torch),
        "cases": {},
    }
    print(f"GPU {report['device']}: float32 GEMM {report['gemm_tflops_fp32']:.1f} TFLOP/s", flush=True)
    cases = QUICK_CASES if args.quick else CASES
    data = {name: make_case(torch, **case) for name, case in cases.items()}

    def save():
        (args.out / "gpu_report.json").write_text(json.dumps(report, indent=2, default=str))

    # The GPU systems first, then scikit-learn, then the CPU: what matters most is measured first.
    for name, case in cases.items():
        X, weights, means, covariances = data[name]
        cov = case["covariance_type"]
        results = report["cases"].setdefault(name, {"case": case})
        results["fastelbo_cuda"] = measure(
            fastelbo_fit(X, weights, means, covariances, cov, "cuda"), args.gpu_repeats
        )
        print(name, "fastelbo_cuda", results["fastelbo_cuda"], flush=True)
        if cov == "diag":
            for label, scale in (("clustered", 1.0), ("dense", 1e4)):
                seconds, tflops = diag_pass_throughput(X, weights, means, scale * covariances)
                results[f"fastelbo_cuda_pass_{label}"] = {
                    "seconds": seconds,
                    "tflops": tflops,
                    "fraction_of_gemm": tflops / report["gemm_tflops_fp32"],
                }
                print(name, "diag pass", label, results[f"fastelbo_cuda_pass_{label}"], flush=True)
        try:
            results["fastelbo_cuda_kernels_ms"] = kernel_profile(
                torch, fastelbo_pass_function(X, weights, means, covariances, cov)
            )
            print(name, "kernels (ms)", results["fastelbo_cuda_kernels_ms"], flush=True)
        except Exception as error:  # the profile is a diagnostic, never fatal
            results["fastelbo_cuda_kernels_ms"] = {"error": f"{type(error).__name__}: {error}"}
        measure_on_gpu(
            torch,
            name,
            results,
            "torch_em",
            args.gpu_repeats,
            torch_em_fit,
            X,
            weights,
            means,
            covariances,
            cov,
        )
        save()
    for name, case in cases.items():
        X, weights, means, covariances = data[name]
        results = report["cases"][name]
        measure_on_gpu(
            torch,
            name,
            results,
            "sklearn_array_api",
            1,
            sklearn_array_api_fit,
            X,
            weights,
            means,
            covariances,
            case["covariance_type"],
        )
        save()
    for name, case in cases.items():
        X, weights, means, covariances = data[name]
        results = report["cases"][name]
        results["fastelbo_cpu"] = measure(
            fastelbo_fit(X, weights, means, covariances, case["covariance_type"], "cpu"), args.cpu_repeats
        )
        print(name, "fastelbo_cpu", results["fastelbo_cpu"], flush=True)
        save()
    table = format_table(report)
    (args.out / "gpu_report.md").write_text(table)
    print(table)
    return report


def format_table(report):
    lines = [
        f"GPU: {report['device']}; float32 GEMM (PyTorch, TF32 off): "
        f"{report['gemm_tflops_fp32']:.1f} TFLOP/s",
        "",
        "| case | system | s / iteration | vs fastelbo CUDA | lower bound |",
        "|---|---|---|---|---|",
    ]
    for name, results in report["cases"].items():
        ours = results["fastelbo_cuda"].get("seconds_per_iteration")
        for system in ("fastelbo_cuda", "sklearn_array_api", "torch_em", "fastelbo_cpu"):
            r = results.get(system, {"error": "not measured"})
            if "error" in r:
                lines.append(f"| {name} | {system} | n/a | | {r['error'][:120]} |")
                continue
            s = r["seconds_per_iteration"]
            ratio = f"{s / ours:.1f}x" if ours else ""
            lines.append(f"| {name} | {system} | {s:.4f} | {ratio} | {r['lower_bound']:.6f} |")
        for label in ("clustered", "dense"):
            p = results.get(f"fastelbo_cuda_pass_{label}")
            if p:
                lines.append(
                    f"| {name} | fastelbo CUDA pass, {label} (E-step + statistics) | {p['seconds']:.4f} | "
                    f"{p['tflops']:.1f} TFLOP/s = {100 * p['fraction_of_gemm']:.0f}% of GEMM | |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
