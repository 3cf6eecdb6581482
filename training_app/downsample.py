"""Largest-triangle-three-buckets downsampling (Steinarsson 2013) in numpy, for loss curves in the browser.

    x2, y2 = lttb(x, y, max_points=2000)

Keeps the first and the last point; every other bucket keeps the one point that spans the largest triangle with
the point kept before it and the mean of the next bucket, which preserves spikes that plain striding would drop.
"""

import numpy as np


def lttb(x, y, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    if max_points < 3 or n <= max_points:
        if n <= max_points:
            return x, y
        keep = np.unique(np.linspace(0, n - 1, max(max_points, 1)).round().astype(np.int64))
        return x[keep], y[keep]
    # n - 2 inner points into max_points - 2 buckets of near-equal size
    edges = np.linspace(1, n - 1, max_points - 1).astype(np.int64)
    keep = np.empty(max_points, dtype=np.int64)
    keep[0], keep[-1] = 0, n - 1
    previous = 0
    for b in range(max_points - 2):
        start, end = edges[b], edges[b + 1]
        if b + 2 < len(edges):
            next_start, next_end = edges[b + 1], edges[b + 2]
        else:
            next_start, next_end = n - 1, n
        mean_x, mean_y = x[next_start:next_end].mean(), y[next_start:next_end].mean()
        px, py = x[previous], y[previous]
        area = np.abs((px - mean_x) * (y[start:end] - py) - (px - x[start:end]) * (mean_y - py))
        previous = start + int(np.argmax(area))
        keep[b + 1] = previous
    return x[keep], y[keep]
