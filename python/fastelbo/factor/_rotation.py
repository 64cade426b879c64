"""Orthomax rotations of factor loadings (varimax, quartimax).

The likelihood of a factor model does not change when its factors are rotated (``components ->
R components`` with R orthogonal), so a rotation only chooses a more interpretable basis. Orthomax
maximises ``sum_h [sum_d L_dh^4 - (gamma / D) (sum_d L_dh^2)^2]`` over rotations of the loadings
``L = components^T`` (gamma = 1: varimax, gamma = 0: quartimax), by the classical iteration that
replaces the rotation with the orthogonal polar factor of the criterion's gradient.
"""

from __future__ import annotations

import numpy as np

ROTATIONS = ("varimax", "quartimax")
_GAMMA = {"varimax": 1.0, "quartimax": 0.0}


def orthomax(components, method, tol=1e-6, max_iter=100):
    """Rotate ``components`` (shape (H, D)) by the orthomax rotation ``method``.

    Returns
    -------
    ndarray of shape (H, D)
        The rotated components; ``rotated^T rotated == components^T components``.
    """
    gamma = _GAMMA[method]
    loadings = components.T
    n_features, n_components = loadings.shape
    rotation = np.eye(n_components)
    criterion = 0.0
    for _ in range(max_iter):
        rotated = loadings @ rotation
        column_norms = np.sum(rotated**2, axis=0)
        gradient = loadings.T @ (rotated**3 - (gamma / n_features) * rotated * column_norms)
        left, singular_values, right = np.linalg.svd(gradient)
        rotation = left @ right
        previous, criterion = criterion, float(np.sum(singular_values))
        if criterion <= previous * (1.0 + tol):
            break
    return (loadings @ rotation).T


def with_positive_largest_loadings(components):
    """``components`` with every row's sign chosen so that its entry of largest magnitude is
    positive: the likelihood does not depend on the signs, and the SVDs that produce the rows fix
    them differently across LAPACK builds. Entries within 1e-8 of the largest magnitude count as
    tied (the first one decides), so that columns equal up to sign (x and -x) do not let round-off
    pick the sign."""
    if components.shape[0] == 0:
        return components
    magnitudes = np.abs(components)
    tied = magnitudes >= (1.0 - 1e-8) * magnitudes.max(axis=1, keepdims=True)
    deciding = components[np.arange(components.shape[0]), np.argmax(tied, axis=1)]
    return components * np.where(deciding < 0, -1.0, 1.0)[:, None]
