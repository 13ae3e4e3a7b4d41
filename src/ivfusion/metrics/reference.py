"""A second, deliberately different implementation of ``ivfusion.metrics.fusion`` (same definitions).

Written from the published formulas, not from fusion.py: SciPy/NumPy only (no OpenCV), 2-D kernels built the way
MATLAB's ``fspecial`` builds them, FFT convolution for the Gaussian windows ('valid'), ``scipy.signal.convolve2d``
(true convolution, zero fill) for Sobel, ``np.histogram``/``np.histogram2d`` and entropies for EN and MI
(MI = H(X) + H(Y) - H(X, Y)), explicit slicing for the differences, and per-branch transcriptions of the VIF
clamps and the Qabf strength ratio. It is slow-ish and meant for tests and cross-checks only.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

REFERENCE_METRICS = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")
REFERENCE_EXTRA = ("Nabf", "MS_SSIM")


def gray(img: np.ndarray) -> np.ndarray:
    """2-D as is; 3 channels are B, G, R: (299 R + 587 G + 114 B) / 1000 (float64, unrounded)."""
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        wide = arr.astype(np.int64) if np.issubdtype(arr.dtype, np.integer) else arr.astype(np.float64)
        blue, green, red = wide[:, :, 0], wide[:, :, 1], wide[:, :, 2]
        return (299 * red + 587 * green + 114 * blue) / 1000
    return arr.astype(np.float64)


def levels(img: np.ndarray) -> np.ndarray:
    """uint8 levels: clip to [0, 255], add one half and truncate (round half up)."""
    return (np.clip(img, 0, 255) + 0.5).astype(np.uint16)


def _entropy_of_counts(counts: np.ndarray) -> float:
    p = counts.ravel() / counts.sum()
    p = p[p > 0]
    return float(np.sum(p * np.log2(1.0 / p)))


def en(f):
    counts, _ = np.histogram(levels(f), bins=256, range=(0, 256))
    return _entropy_of_counts(counts)


def sd(f):
    return float(np.sqrt(np.mean((f - np.mean(f)) ** 2)))


def sf(f):
    m, n = f.shape
    rf = np.sqrt(np.sum((f[:, 1:] - f[:, :-1]) ** 2) / (m * (n - 1)))
    cf = np.sqrt(np.sum((f[1:, :] - f[:-1, :]) ** 2) / ((m - 1) * n))
    return float(np.sqrt(rf**2 + cf**2))


def ag(f):
    gx = np.empty_like(f)
    gy = np.empty_like(f)
    gx[:, 1:-1] = (f[:, 2:] - f[:, :-2]) / 2
    gx[:, 0], gx[:, -1] = f[:, 1] - f[:, 0], f[:, -1] - f[:, -2]
    gy[1:-1, :] = (f[2:, :] - f[:-2, :]) / 2
    gy[0, :], gy[-1, :] = f[1, :] - f[0, :], f[-1, :] - f[-2, :]
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


def mi_pair(x, y):
    joint, _, _ = np.histogram2d(levels(x).ravel(), levels(y).ravel(), bins=256, range=[[0, 256], [0, 256]])
    return _entropy_of_counts(joint.sum(axis=1)) + _entropy_of_counts(joint.sum(axis=0)) - _entropy_of_counts(joint)


def corr2(x, y):
    if np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def fspecial_gaussian(size, sigma):
    half = (size - 1) / 2
    y, x = np.mgrid[-half : half + 1, -half : half + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def filt_valid(win, img):
    return signal.fftconvolve(img, win[::-1, ::-1], mode="valid")  # correlation = convolution with flipped win


def vifp_mscale(ref, dist, sigma_nsq=2.0):
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = fspecial_gaussian(n, n / 5)
        if scale > 1:
            ref = filt_valid(win, ref)[0::2, 0::2]
            dist = filt_valid(win, dist)[0::2, 0::2]
        mu1, mu2 = filt_valid(win, ref), filt_valid(win, dist)
        sigma1_sq = filt_valid(win, ref * ref) - mu1 * mu1
        sigma2_sq = filt_valid(win, dist * dist) - mu2 * mu2
        sigma12 = filt_valid(win, ref * dist) - mu1 * mu2
        sigma1_sq[sigma1_sq < 0] = 0
        sigma2_sq[sigma2_sq < 0] = 0
        g = sigma12 / (sigma1_sq + 1e-10)
        sv_sq = sigma2_sq - g * sigma12
        idx = sigma1_sq < 1e-10
        g[idx] = 0
        sv_sq[idx] = sigma2_sq[idx]
        sigma1_sq[idx] = 0
        idx = sigma2_sq < 1e-10
        g[idx] = 0
        sv_sq[idx] = 0
        idx = g < 0
        sv_sq[idx] = sigma2_sq[idx]
        g[idx] = 0
        sv_sq[sv_sq <= 1e-10] = 1e-10
        num += np.sum(np.log10(1 + g**2 * sigma1_sq / (sv_sq + sigma_nsq)))
        den += np.sum(np.log10(1 + sigma1_sq / sigma_nsq))
    return float(num / den)


def _sobel_maps(img):
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
    sx = signal.convolve2d(img, h3, mode="same", boundary="fill", fillvalue=0)
    sy = signal.convolve2d(img, h1, mode="same", boundary="fill", fillvalue=0)
    g = np.sqrt(sx**2 + sy**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.arctan(sy / sx)
    a[np.abs(sx) < 1e-9] = np.pi / 2  # 'Sx == 0' up to round-off, as in fusion.py's documented definition
    return g, a


def _q_map(g_s, a_s, g_f, a_f):
    tg, kg, dg, ta, ka, da = 0.9994, -15, 0.5, 0.9879, -22, 0.8
    gsf = np.ones_like(g_s)
    first = g_s > g_f
    second = g_s < g_f
    gsf[first] = g_f[first] / g_s[first]
    gsf[second] = g_s[second] / g_f[second]
    asf = 1 - np.abs(a_s - a_f) / (np.pi / 2)
    return tg / (1 + np.exp(kg * (gsf - dg))) * (ta / (1 + np.exp(ka * (asf - da))))


def _edge(a, b, f):
    (ga, aa), (gb, ab), (gf, af) = _sobel_maps(a), _sobel_maps(b), _sobel_maps(f)
    return _q_map(ga, aa, gf, af), _q_map(gb, ab, gf, af), ga, gb, gf


def qabf(a, b, f):
    qaf, qbf, ga, gb, _ = _edge(a, b, f)
    den = np.sum(ga) + np.sum(gb)
    return float((np.sum(qaf * ga) + np.sum(qbf * gb)) / den) if den > 0 else 0.0


def nabf(a, b, f):
    qaf, qbf, ga, gb, gf = _edge(a, b, f)
    am = np.logical_and(gf - ga > 1e-9, gf - gb > 1e-9).astype(float)  # ties up to round-off are not artefacts
    den = np.sum(ga) + np.sum(gb)
    return float(np.sum(am * ((1 - qaf) * ga + (1 - qbf) * gb)) / den) if den > 0 else 0.0


def ssim_index(img1, img2):
    """(mssim, mcs) as in Wang's ssim_index.m with the 11x11 sigma-1.5 Gaussian, 'valid', L = 255."""
    win = fspecial_gaussian(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu1, mu2 = filt_valid(win, img1), filt_valid(win, img2)
    sigma1_sq = filt_valid(win, img1 * img1) - mu1**2
    sigma2_sq = filt_valid(win, img2 * img2) - mu2**2
    sigma12 = filt_valid(win, img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1**2 + mu2**2 + c1) * (sigma1_sq + sigma2_sq + c2))
    cs_map = (2 * sigma12 + c2) / (sigma1_sq + sigma2_sq + c2)
    return float(ssim_map.mean()), float(cs_map.mean())


def msssim(img1, img2):
    weight = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    lpf = np.ones((2, 2)) / 4
    mcs = []
    for level in range(5):
        mssim, cs = ssim_index(img1, img2)
        mcs.append(cs)
        if level < 4:
            img1 = ndimage.correlate(img1, lpf, mode="reflect", origin=(-1, -1))[0::2, 0::2]
            img2 = ndimage.correlate(img2, lpf, mode="reflect", origin=(-1, -1))[0::2, 0::2]
    result = mssim ** weight[4] if mssim > 0 else 0.0
    for cs, w in zip(mcs[:4], weight[:4]):
        result *= cs**w if cs > 0 else 0.0
    return float(result)


def reference_metrics(ir, vi, fused, metrics=REFERENCE_METRICS) -> dict[str, float]:
    """The same keys and definitions as ``ivfusion.metrics.fusion.fusion_metrics``."""
    a, b, f = gray(ir), gray(vi), gray(fused)
    if not a.shape == b.shape == f.shape:
        raise ValueError(f"shapes differ: {a.shape}, {b.shape}, {f.shape}")
    table = {
        "EN": lambda: en(f),
        "SD": lambda: sd(f),
        "SF": lambda: sf(f),
        "AG": lambda: ag(f),
        "MI": lambda: mi_pair(a, f) + mi_pair(b, f),
        "SCD": lambda: corr2(f - b, a) + corr2(f - a, b),
        "VIF": lambda: vifp_mscale(a, f) + vifp_mscale(b, f),
        "Qabf": lambda: qabf(a, b, f),
        "SSIM": lambda: ssim_index(f, a)[0] + ssim_index(f, b)[0],
        "Nabf": lambda: nabf(a, b, f),
        "MS_SSIM": lambda: msssim(f, a) + msssim(f, b),
    }
    return {name: table[name]() for name in metrics}
