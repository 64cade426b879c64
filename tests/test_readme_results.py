"""The README's benchmark figures are those of the committed results under bench/results.

Timings depend on the machine, so the README quotes measured runs (with the CPU and build named)
rather than printing them from an example; these tests check that what it quotes is what the
results files hold, so that a re-run of a benchmark and the README cannot drift apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_readme_examples import README, prose

RESULTS = README.parent / "bench" / "results"


def _section(title):
    """The README's text (fenced blocks blanked) from the heading ``## title`` to the next ``## ``."""
    text = prose(README.read_text(encoding="utf-8"))
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def _rows(text):
    """Table rows other than headers and separators."""
    rows = [line.strip() for line in text.splitlines() if line.startswith("| ")]
    return [row for row in rows if not row.startswith("| case ") and not set(row) <= set("|- ")]


XEON = "### On an Intel Xeon"


def test_performance_tables_are_the_reports():
    # The AMD EPYC's tables, then the Intel Xeon's subsection, each from its own report.
    epyc, xeon = _section("Performance").split(XEON)
    for text, path, least in ((epyc, "report.md", 20), (xeon, "xeon/report.md", 19)):
        report = (RESULTS / path).read_text(encoding="utf-8")
        rows = _rows(text)
        assert len(rows) >= least
        missing = [row for row in rows if row not in report]
        assert not missing, f"README rows not in bench/results/{path}:\n" + "\n".join(missing)
    threads = re.search(r"^(sep3-\S+: [0-9.]+ s/iter with `n_jobs=1`.*)$", epyc, re.MULTILINE)
    assert threads and threads[1] in (RESULTS / "report.md").read_text(encoding="utf-8")


def test_performance_names_the_machine_of_the_report():
    report = (RESULTS / "report.md").read_text(encoding="utf-8")
    section = _section("Performance")
    assert "CPU target: v4" in report and "AVX512" in report and "2 CPUs" in report
    assert "AMD EPYC" in section and "AVX-512" in section and "`v4` build" in section
    xeon = (RESULTS / "xeon" / "report.md").read_text(encoding="utf-8")
    assert "Intel(R) Xeon(R)" in xeon and "CPU target: native" in xeon and "AVX512" in xeon
    assert "Intel Xeon" in section.split(XEON)[1] and "`-march=native` build" in section


#: (what the README says, results file, what the file must say) for the figures quoted in prose.
QUOTED = [
    # the Intel Xeon, bench/factor_analysis_speed.py
    (
        "0.141 / 0.301 / 0.870 s at D = 300 / 600\n  / 1,000",
        "xeon/factor_wide_features.md",
        [f"| FastFactorAnalysis | {seconds} |" for seconds in ("0.141", "0.301", "0.870")],
    ),
    # truncated EM, bench/report.py --groups truncated
    ("truncated **0.0227 / 0.0298 / 0.0280 s** per iteration", "truncated/report.md", ["| 256 | 0.0227 |"]),
    (
        "exact 0.0541 / 0.2640 / 1.4294 s (growth 26x)",
        "truncated/report.md",
        ["| 4096 | 0.0280 | 1.23x | 1.4294 |"],
    ),
    (
        "truncated fit 9.21 s (0.177 s per iteration)",
        "truncated/report.md",
        ["| truncated | 9.21 | 30, not converged"],
    ),
    (
        "exact EM 72.25 s (2.257 s per iteration), 187.104",
        "truncated/report.md",
        ["| exact | 72.25 |", "187.103826"],
    ),
    ("**0.957 s per iteration**", "truncated/report.md", ["**0.957**"]),
    ("peak RSS 913 MiB", "truncated/report.md", ["peak RSS during `fit` 913 MiB"]),
    # FastMFA, bench/mfa_interleaved.py
    (
        "**2.14 s against 29.75 s (13.9x)",
        "mfa/interleaved.txt",
        ["FastMFA 2.136 s/iter, NumPy MFA EM 29.75 s/iter"],
    ),
    (
        "2.05 s against 26.05 s (12.7x)**",
        "mfa/interleaved.txt",
        ["FastMFA 2.054 s/iter, NumPy MFA EM 26.05 s/iter"],
    ),
    (
        "FastMFA at 5.37 s against NumPy's 32.3 s (6.0x)",
        "mfa/report.md",
        ["| 5.3700 | 3.6217 | 32.2694 | 7.5468 |"],
    ),
    ("mean log-likelihood of 198.51 per patch", "mfa/report.md", ["198.5074159 | 5.3e-04"]),
    # factor models, bench/report.py's factor group
    (
        "FastFactorAnalysis fits in 0.043 s against 6.4 s",
        "factor/report.md",
        ["| 0.0429 | 18 |", "| 6.4049 | 16 |"],
    ),
    ("and 11.4 s with `'lapack'` (266x)", "factor/report.md", ["| 11.4134 | 16 | -117.479054 | 265.7x |"]),
    ("(0.040 s against 0.055 s)", "factor/report.md", ["| 0.0402 | 1 |", "| 0.0546 | closed form |"]),
    # Bernoulli and Poisson mixtures on Zen 4, bench/report.py's exponential_family group
    (
        "| 100 | 3.14 | 26.68 (8.5x) | 3.27 | 27.69 (8.5x) |",
        "exponential_family/n1m_zen4_1207_run4/report.md",
        ["| 3.1374 | 26.6773 | 8.50x | 4.3743 | 0.72x |", "| 3.2700 | 27.6900 | 8.47x | 4.5775 | 0.71x |"],
    ),
    (
        "gave 3.14-3.28 s against 26.68-28.37 s (8.5-8.6x) for the Bernoulli mixture and 3.27-3.66 s "
        "against 27.69-29.92 s (8.2-8.5x) for the Poisson mixture",
        "exponential_family/n1m_zen4_1207_run4/report.md",
        ["| 3.1374 | 26.6773 | 8.50x |", "| 3.2700 | 27.6900 | 8.47x |"],
    ),
    (
        "gave 3.14-3.28 s against 26.68-28.37 s (8.5-8.6x) for the Bernoulli mixture and 3.27-3.66 s "
        "against 27.69-29.92 s (8.2-8.5x) for the Poisson mixture",
        "exponential_family/n1m_zen4_1207_run5/report.md",
        ["| 3.2824 | 28.3671 | 8.64x |", "| 3.6595 | 29.9240 | 8.18x |"],
    ),
    (
        "the bound itself, measured on one thread, took 4.4-6.8 s, and fastelbo 0.49-0.82x of it",
        "exponential_family/n1m_zen4_1207_run4/report.md",
        ["| 4.3743 |"],
    ),
    (
        "the bound itself, measured on one thread, took 4.4-6.8 s, and fastelbo 0.49-0.82x of it",
        "exponential_family/n1m_zen4_1207_run5/report.md",
        ["| 6.7510 | 0.49x |", "| 0.82x |"],
    ),
    (
        "fastelbo's AVX2 kernels took 3.89 s against 32.82 s (8.4x, Bernoulli) and 3.96 s against 34.23 s "
        "(8.7x, Poisson)",
        "exponential_family/n1m_zen4_v3_kernels_1207/report.md",
        ["| 3.8914 | 32.8185 | 8.43x |", "| 3.9556 | 34.2262 | 8.65x |", "CPU target: v3"],
    ),
    (
        "4.55 s against 32.86 s (7.2x) and 5.19 s against 32.15 s (6.2x)",
        "exponential_family/n1m_zen4_avx2_paths_1207/report.md",
        ["| 4.5521 | 32.8643 | 7.22x |", "| 5.1895 | 32.1488 | 6.19x |", "CPU target: v3"],
    ),
    (
        "(3.29-6.49 s for the Poisson mixture in three other runs that day",
        "exponential_family/n1m_zen4_1207_run2/report.md",
        ["| 3.2943 |"],
    ),
    (
        "(3.29-6.49 s for the Poisson mixture in three other runs that day",
        "exponential_family/n1m_zen4_1207_run1/report.md",
        ["| 6.4887 |"],
    ),
    (
        "| 100 | 0.52 | 3.62 (6.9x) | 0.47 | 3.14 (6.7x) |",
        "exponential_family/n100k_zen4_1207/report.md",
        ["| 0.5237 | 3.6202 | 6.91x |", "| 0.4698 | 3.1363 | 6.68x |"],
    ),
    (
        "| 1,000 | 1.96 | 34.68 (17.7x) | 3.33 | 34.43 (10.4x) |",
        "exponential_family/n100k_zen4_1207/report.md",
        ["| 1.9610 | 34.6771 | 17.68x |", "| 3.3261 | 34.4266 | 10.35x |"],
    ),
    (
        "the Bernoulli mixture at N=100,000 and K=1,000 was timed over iterations 2-13, at 1.96 s per "
        "iteration, while the Poisson mixture's iterations 2-4 took 3.33 s",
        "exponential_family/n100k_zen4_1207/report.json",
        ['"fastelbo": 12', '"numpy": 12', '"fastelbo": 3', '"numpy": 3'],
    ),
    (
        "the NumPy EM took 34.4-34.7 s per iteration at K=1,000",
        "exponential_family/n100k_zen4_1207/report.md",
        ["| 34.6771 |", "| 34.4266 |"],
    ),
    ("gave 22.5-23.6 s)", "exponential_family/n100k_zen4/report.md", ["| 22.4839 |", "| 23.5907 |"]),
    (
        "gave 24.08 s against 295.02 s (12.3x, Bernoulli) and 28.92 s against 377.74 s (13.1x, Poisson)",
        "exponential_family/n1m_k1000_zen4_1207/report.md",
        ["| Poisson | **28.92** (37.65, 30.41, 28.92) | 377.74 | **13.06x** |", "| 295.02 | **12.25x** |"],
    ),
    (
        "gave 24.08 s against 295.02 s (12.3x, Bernoulli) and 28.92 s against 377.74 s (13.1x, Poisson)",
        "exponential_family/n1m_k1000_zen4_1207/step_poisson_n1m_k1000.json",
        ['"numpy": 377.73', '"fastelbo": 28.92'],
    ),
    # ... and bench/sparse_out_of_core.py at N = 1M, K = 100
    (
        "read in 16 blocks, added 475 MiB to the process and took 8.98 s per iteration, against 6.49 s",
        "exponential_family/sparse_out_of_core.md",
        [
            "| memmap | 16 | 475 | 475 | 1,191 | 27.0 | 8.98 |",
            "| memory | 1 | 1,466 | 318 | 42 | 19.5 | 6.49 |",
        ],
    ),
    # ... and bench/exponential_family_step.py at N = 1M, K = 1,000
    (
        "| 1,000 | 22.23 | 179.68 (8.1x) | 21.98 | 173.92 (7.9x) |",
        "exponential_family/n1m_k1000_zen4/report.md",
        [
            "| Poisson | component by component | **21.98** (30.43, 23.13, 21.98) | 173.92 | **7.91x** |",
            "| Bernoulli | component by component | **22.23** (35.05, 26.43, 22.23) | 179.68 | **8.08x** |",
            "| 214.29 |",
            "| 230.16 |",
        ],
    ),
    # ... on Zen 3 with the kernels of 2026-12-05
    (
        "4.71 s against 21.82 s (4.6x, Bernoulli) and 4.79 s against 20.74 s (4.3x, Poisson)",
        "exponential_family/n1m/report.md",
        ["| 4.7098 | 21.8184 | 4.63x |", "| 4.7941 | 20.7436 | 4.33x |"],
    ),
    (
        "38.23 s against 173.05 s (4.5x) and 34.27 s against 155.48 s (4.5x)",
        "exponential_family/n1m_k1000/report.md",
        [
            "| Bernoulli | 38.23 (42.19, 41.60, 38.23) | 173.05 | 4.53x |",
            "| Poisson | 34.27 (40.75, 41.50, 34.27) | 155.48 | 4.54x |",
        ],
    ),
    (
        "0.55 s against 2.68 s (4.9x) and 0.62 s against 2.75 s (4.4x) at K=100, 4.04 s against 24.50 s "
        "(6.1x) and 4.13 s against 25.61 s (6.2x) at K=1,000",
        "exponential_family/report.md",
        [
            "| 0.5485 | 2.6842 | 4.89x |",
            "| 0.6212 | 2.7459 | 4.42x |",
            "| 4.0377 | 24.4970 | 6.07x |",
            "| 4.1274 | 25.6118 | 6.21x |",
        ],
    ),
    # ... truncated EM at N = 1M, K = 1,000 on Zen 4 (bench/truncated_exponential_family.py)
    (
        "| 1 | 2.20 (10.8x) | 0.04 % | 1.71 (13.7x) | 0.22 % |",
        "exponential_family/n1m_k1000_zen4/report.md",
        [
            "| Poisson | 1 | 23.687 | 2.195 | **10.8x** | -484.7600 | -484.9667 | 0.04 % |",
            "| Bernoulli | 1 | 23.382 | 1.710 | **13.7x** | -459.0951 | -460.1000 | 0.22 % |",
        ],
    ),
    (
        "| 3 | 3.08 (7.7x) | 0.02 % | 2.83 (8.3x) | 0.07 % |",
        "exponential_family/n1m_k1000_zen4/report.md",
        [
            "| Poisson | 3 | 23.687 | 3.077 | 7.7x | -484.7600 | -484.8630 | 0.02 % |",
            "| Bernoulli | 3 | 23.382 | 2.828 | 8.3x | -459.0951 | -459.4365 | 0.07 % |",
        ],
    ),
]


@pytest.mark.parametrize(("quoted", "file", "sources"), QUOTED, ids=[quoted[:40] for quoted, _, _ in QUOTED])
def test_quoted_benchmark_figures_are_in_the_results(quoted, file, sources):
    readme = " ".join(README.read_text(encoding="utf-8").split())  # line breaks do not matter
    assert " ".join(quoted.split()) in readme, f"the README no longer says {quoted!r}: update QUOTED"
    text = (RESULTS / file).read_text(encoding="utf-8")
    missing = [source for source in sources if source not in text]
    assert not missing, f"bench/results/{file} does not hold {missing} (quoted as {quoted!r})"


def test_results_files_the_readme_links_exist():
    linked = re.findall(r"\((bench/results/[^)\s]+)\)", README.read_text(encoding="utf-8"))
    assert linked
    missing = [path for path in linked if not (README.parent / path).exists()]
    assert not missing, missing


def test_every_relative_link_of_the_readme_exists():
    text = README.read_text(encoding="utf-8")
    links = [link for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text) if "://" not in link]
    missing = [link for link in links if not (README.parent / Path(link)).exists()]
    assert not missing, missing
    anchors = re.findall(r"\]\(#([^)]+)\)", text)
    headings = {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ +(.+)$", prose(text), re.MULTILINE)
    }
    assert not [anchor for anchor in anchors if anchor not in headings], (anchors, sorted(headings))
