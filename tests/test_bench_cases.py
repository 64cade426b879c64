"""The benchmark's cases and data: ids say what data a case fits, the real data are what they claim."""

import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
import cases  # noqa: E402
import real_data  # noqa: E402
from cases import Case  # noqa: E402

ALL_CASES = (
    *cases.FULL_ITERATION_CASES,
    *cases.FULL_FIT_CASES,
    *cases.QUICK_ITERATION_CASES,
    *cases.QUICK_FIT_CASES,
)


def test_case_ids_name_the_data_and_tell_cases_apart():
    assert Case("diag", 200_000, 64, 256).id == "sep3-diag-N200k-D64-K256-float64"
    assert Case("diag", 200_000, 64, 256, separation=0.3).id == "sep0.3-diag-N200k-D64-K256-float64"
    assert Case("full", 1797, 64, 10, data="digits").id == "digits-full-N1797-D64-K10-float64"
    assert Case("diag", 1_000_000, 16, 16, "float32").id == "sep3-diag-N1M-D16-K16-float32"
    for suite in (cases.FULL_ITERATION_CASES, cases.QUICK_ITERATION_CASES):
        assert len({case.id for case in suite}) == len(suite)
        data = {case.id.split("-")[0] for case in suite}
        assert {"sep3", "sep0.3", "patches", "digits"} <= data


def test_separation_sets_how_far_apart_the_cluster_means_are():
    spread = {}
    for separation in (cases.WELL_SEPARATED, cases.OVERLAPPING):
        case = Case("spherical", 20_000, 8, 4, separation=separation)
        X = cases.make_data(case)
        # Per-coordinate variance = between-cluster spread^2 + within-cluster variance (about 1.1).
        spread[separation] = np.sqrt(max(X.var(axis=0).mean() - 1.1, 0.0))
    assert spread[cases.OVERLAPPING] < 0.6 < 2.0 < spread[cases.WELL_SEPARATED]


def test_real_data_cases_check_their_width_and_size():
    with pytest.raises(ValueError, match="64 features"):
        Case("full", 100, 32, 2, data="digits")
    with pytest.raises(ValueError, match="1797 rows"):
        cases.make_data(Case("full", 2000, 64, 2, data="digits"))
    with pytest.raises(ValueError, match="data must be"):
        Case("full", 100, 64, 2, data="photos")


def test_image_patches_are_grey_mean_free_8x8_windows_of_both_photos():
    pytest.importorskip("PIL")  # scikit-learn reads its sample photos with Pillow
    from sklearn.datasets import load_sample_images

    stride = 8
    patches = real_data.image_patches(stride=stride)
    photos = load_sample_images().images
    per_photo = [((h - 8) // stride + 1) * ((w - 8) // stride + 1) for h, w, _ in (p.shape for p in photos)]
    assert patches.shape == (sum(per_photo), 64)
    np.testing.assert_allclose(patches.sum(axis=1), 0.0, atol=1e-12)

    # Independently: the flower photo's first patch, grey by the BT.601 weights, mean removed.
    corner = photos[1][:8, :8].astype(np.float64) @ [0.299, 0.587, 0.114] / 255.0
    np.testing.assert_allclose(patches[per_photo[0]], (corner - corner.mean()).ravel(), atol=1e-12)
    assert real_data.image_patches(stride=stride, dtype="float32").dtype == np.float32


def test_patch_cases_are_a_subset_of_the_patches_in_the_case_dtype():
    pytest.importorskip("PIL")
    X = cases.make_data(Case("full", 1000, 64, 2, "float32", data="patches"))
    assert X.shape == (1000, 64) and X.dtype == np.float32 and X.flags.c_contiguous
    np.testing.assert_allclose(X.sum(axis=1), 0.0, atol=1e-5)
