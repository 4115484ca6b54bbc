"""The inner boundary band of a mask, shared by Boundary IoU (:mod:`suite.boundary_metrics`)
and the prediction pictures (:mod:`suite.predictions`).

Cheng, Girshick, Dollár, Berg, Kirillov, "Boundary IoU: Improving Object-Centric Image
Segmentation Evaluation", CVPR 2021: ``M_d`` is the part of a mask within distance ``d`` of its
contour, with ``d = max(1, round(ratio · diag))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

DILATION_RATIO = 0.02  # d as a fraction of the image diagonal (Cheng et al. 2021)


def band_width(shape: Sequence[int], ratio: float = DILATION_RATIO) -> int:
    """``d = max(1, round(ratio · sqrt(H² + W²)))`` pixels, the band width of Boundary IoU."""
    h, w = int(shape[0]), int(shape[1])
    return max(1, int(round(ratio * float(np.hypot(h, w)))))


def inner_band(mask: np.ndarray, d: int) -> np.ndarray:
    """The pixels of a binary ``mask`` within chessboard distance ``d`` of its contour.

    ``M_d = {x ∈ M : min_{y ∉ M} ‖x − y‖_∞ ≤ d}`` with the outside of the image counted as
    ``∉ M``: exactly the pixels that ``d`` 3×3 erosions of the zero-padded mask remove
    (``mask − erode^d(mask)`` of the reference implementation).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask
    padded = np.pad(mask, 1, constant_values=False)
    dist = ndimage.distance_transform_cdt(padded, metric="chessboard")[1:-1, 1:-1]
    return mask & (dist <= d)
