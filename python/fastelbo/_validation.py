"""Validation of the inputs every fastelbo estimator reads: data from other array libraries,
sample weights, initial parameters, and the number of samples to draw."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn import get_config
from sklearn.utils.validation import check_array

#: The smallest variance (of data, fitted covariances or noise floors) a mixture fit holds in each
#: dtype: 2**26 above the dtype's smallest normal number. Below it squared deviations and their
#: products with precisions turn subnormal, which the kernels flush to zero (float32 X * 1e-19
#: fitted by FastGMM scored 7 nats per row off its own parameters, float64 X * 1e-156 4,307; FastMFA
#: noise floors of 2**-1016 lost 6 digits of the log-likelihood, of 2**-1029 ten, while floors of
#: 2**-1002 fitted to 1e-13).
SMALLEST_FIT_VARIANCE = {np.dtype(np.float32): 2.0**-100, np.dtype(np.float64): 2.0**-996}


def as_numpy(value, name):
    """``value`` as a NumPy array when it comes from another array library; anything else as is.

    Under scikit-learn's ``array_api_dispatch`` its validation keeps such arrays in their own
    namespace, where NumPy dtypes (and the C++ kernels) do not apply; every fastelbo estimator
    computes on the CPU with NumPy, so it converts them first (without a copy where the library
    allows).
    """
    if isinstance(value, np.ndarray) or not hasattr(value, "__array_namespace__"):
        return value
    errors = []
    for convert in (np.asarray, np.from_dlpack):
        try:
            return convert(value)
        except Exception as error:  # each library fails in its own way (TypeError, BufferError, ...)
            errors.append(f"{convert.__name__}: {error}")
    raise TypeError(
        f"{name} of type {type(value).__module__}.{type(value).__name__} cannot be converted to a NumPy "
        f"array ({'; '.join(errors)}). fastelbo computes with NumPy on the CPU: convert {name} to a "
        "NumPy array (e.g. move it to the CPU) first."
    )


_KEPT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def valid_as_given(estimator, X, min_samples):
    """Whether new rows for a fitted ``estimator`` are valid as they are: a plain C-contiguous
    ndarray of native float64 or float32, 2-D, with the fitted number of features (at least one), at least
    ``min_samples`` rows and finite values (unless scikit-learn's ``assume_finite``), for an
    estimator fitted without feature names.

    For such X scikit-learn's ``validate_data`` returns X itself and checks nothing more, at a
    cost of about 60 microseconds a call, more than the pass over a small batch. Anything else
    (and any X that fails a check, so that its message is scikit-learn's) goes through it.
    """
    if type(X) is not np.ndarray or X.ndim != 2 or X.dtype not in _KEPT_DTYPES or not X.flags.c_contiguous:
        return False
    if X.shape[1] != getattr(estimator, "n_features_in_", None) or X.shape[1] < 1 or X.shape[0] < min_samples:
        return False
    if getattr(estimator, "feature_names_in_", None) is not None:
        return False
    if get_config()["assume_finite"]:
        return True
    # As scikit-learn's first check; a sum of finite values may overflow (to inf, or to NaN from
    # inf - inf), and then validate_data looks at every value, warning about nothing twice.
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(X)))


def in_native_byte_order(X):
    """An ndarray of the other byte order converted to the native one (the same values).

    scikit-learn's validation takes big-endian float32 (``'>f4'``) for a dtype it does not keep
    and computes it in float64; fastelbo computes float32 data in float32 whatever their byte
    order, as it does when they are read from a file.
    """
    if isinstance(X, np.ndarray) and not X.dtype.isnative:
        return X.astype(X.dtype.newbyteorder("="))
    return X


def check_sample_weight(sample_weight, X, scale_to_unit=False):
    """Validated sample weights, with scikit-learn's ``_check_sample_weight`` semantics.

    None stays None (the unweighted path); a number is the weight of every row; an array must have
    shape (n_samples,) and be finite, non-negative and not all zero. The dtype is X's (the kernels
    read weights in the working precision); the checks and the scaling below run in float64 first,
    so that rounding to float32 does not change the weights' ratios unseen.

    ``scale_to_unit``: for estimators whose every output depends on the weights' ratios only, the
    weights are returned multiplied by a power of two (exactly), the largest in [0.5, 1), so that no
    sum of weights or of their squares leaves float64's range. Otherwise (outputs in the weights'
    units, such as a total log-likelihood) a total weight beyond float64's normal range is refused,
    and so are weights that X's dtype cannot hold as normal numbers.
    """
    if sample_weight is None:
        return None
    n_samples = X.shape[0]
    sample_weight = as_numpy(sample_weight, "sample_weight")
    if isinstance(sample_weight, (np.ndarray, np.generic)) and sample_weight.ndim == 0:
        sample_weight = sample_weight.item()  # a NumPy scalar or 0-d array is a scalar weight
    if isinstance(sample_weight, numbers.Number):
        if not isinstance(sample_weight, numbers.Real) or not np.isfinite(sample_weight):
            raise ValueError(f"sample_weight must be a finite real number, got {sample_weight!r}")
        sample_weight = np.full(n_samples, sample_weight, dtype=np.float64)
    else:
        try:
            sample_weight = check_array(
                sample_weight,
                accept_sparse=False,
                ensure_2d=False,
                dtype=np.float64,
                order="C",
                input_name="sample_weight",
            )
        except (TypeError, ValueError) as error:
            if "sample_weight" in str(error):
                raise
            # check_array does not always say which input it rejects ("could not convert ...").
            raise type(error)(f"sample_weight: {error}") from None
        if sample_weight.ndim != 1:
            raise ValueError(
                f"sample_weight must be a 1D array or a scalar, got a {sample_weight.ndim}D array; "
                f"expected a scalar or a 1D array of length {n_samples}."
            )
        if sample_weight.shape != (n_samples,):
            raise ValueError(f"sample_weight.shape == {sample_weight.shape}, expected {(n_samples,)}!")
    if np.any(sample_weight < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    if not np.any(sample_weight):
        raise ValueError("sample_weight must contain at least one non-zero number (all weights are zero).")
    if scale_to_unit:
        return _scaled_by_a_power_of_two(sample_weight, X.dtype)
    total = float(np.sum(sample_weight))
    if not np.finfo(np.float64).tiny <= total <= np.finfo(np.float64).max:
        # The fit's averages divide by the total weight: a subnormal or overflowing total would
        # make them round-off or infinite. Scaling every weight by a constant changes nothing.
        raise ValueError(
            f"sample_weight sums to {total!r}, beyond float64's normal range; rescale the weights "
            "(multiplying them all by a constant does not change the fit)"
        )
    info = np.finfo(X.dtype)
    positive = sample_weight[sample_weight > 0]
    if positive.min() < info.tiny or positive.max() > info.max:
        # Rounded to X's dtype they would flush to zero, lose digits (changing their ratios) or
        # overflow.
        smallest, largest = float(positive.min()), float(positive.max())
        raise ValueError(
            f"sample_weight holds positive weights from {smallest!r} to {largest!r}, "
            f"beyond the normal range of {X.dtype} (X's dtype); rescale the weights (multiplying "
            "them all by a constant does not change the fit) or pass float64 X"
        )
    return sample_weight.astype(X.dtype, copy=False)


def _scaled_by_a_power_of_two(weights, dtype):
    """float64 ``weights`` times the power of two that brings the largest into [0.5, 1), in
    ``dtype``: exact, so every ratio of weights, and so the fit, is unchanged; but the sums of
    weights and their squares (the M-steps' sx sx^T / nk) no longer overflow or underflow, as they
    did for weights of 1e160 or 1e-200, or for totals beyond float64's range. Where weights span
    more than ``dtype``'s range, the smallest positive one is kept a normal number (not flushed to
    zero) rather than the largest brought to 1."""
    positive = weights[weights > 0]
    info = np.finfo(dtype)
    _, largest = np.frexp(positive.max())
    _, smallest = np.frexp(positive.min())
    # 2**(smallest - 1 - exponent) >= tiny = 2**minexp keeps the smallest positive weight normal;
    # exponent >= largest - maxexp keeps the largest finite, whatever the span.
    exponent = max(min(int(largest), int(smallest) - 1 - info.minexp), int(largest) - info.maxexp)
    return np.ldexp(weights, -exponent).astype(dtype, copy=False)


def as_float_array(value, name):
    """``value`` (an initial parameter) as a finite float64 NumPy array; TypeError/ValueError naming it."""
    value = as_numpy(value, name)
    if np.iscomplexobj(value):
        raise TypeError(f"{name} must be real; complex values are not supported")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be an array of real numbers: {error}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinity")
    return array


def normalisation_tolerance(value, name):
    """The absolute tolerance on ``1 - sum(value)`` of initial mixing weights: scikit-learn's 1e-8,
    or 1e-6 for float32 weights, whose float64 sum is off by float32's rounding (0.4 + 0.6 in
    float32 sums to 1 + 3e-8)."""
    return 1e-6 if np.asarray(as_numpy(value, name)).dtype == np.float32 else 1e-8


def check_sample_count(n_samples, allow_bool=True):
    """``n_samples`` of ``sample`` as an int, truncating a float as scikit-learn's mixtures do.

    A 0-d array is read as its scalar; a non-number (and a bool, unless ``allow_bool``) raises
    TypeError, a value below 1 or not finite ValueError.
    """
    if isinstance(n_samples, np.ndarray) and n_samples.ndim == 0:
        n_samples = n_samples.item()
    if not isinstance(n_samples, numbers.Real) or (not allow_bool and isinstance(n_samples, bool)):
        raise TypeError(f"n_samples must be a number, got {n_samples!r}")
    if not np.isfinite(n_samples) or n_samples < 1:
        raise ValueError(
            f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least one sample."
        )
    # scikit-learn passes n_samples to a multinomial draw, which truncates it to an integer.
    return int(n_samples)
