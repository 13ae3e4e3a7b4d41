"""Standard infrared-visible image-fusion metrics, each definition written out (A = infrared, B = visible, F = fused).

Every metric works on grayscale float64 images on the 0-255 scale. Colour inputs are assumed to be **BGR**
(OpenCV's order) and are converted with OpenCV's BGR2GRAY weights, Y = (299 R + 587 G + 114 B) / 1000, kept in
float64 without rounding (``cv2.cvtColor`` would round to uint8: at most 0.5 grey level apart); use
:func:`to_gray` with ``order="rgb"`` for RGB arrays. Other inputs are taken as they are: a float image on 0-1
must be scaled by the caller. A, B and F must share H x W (``ValueError`` names the shapes).

Published toolboxes disagree on details; this table lists each disagreement and the choice made here.

=========  ===================================================  ==================================================
metric     variants in circulation                              choice here
=========  ===================================================  ==================================================
all        sum over the two sources vs their mean               sum (MI, SCD, VIF, SSIM, MS_SSIM: 2 = perfect)
gray       MATLAB rgb2gray / cv2 (round to uint8), YCbCr Y       BGR2GRAY weights in float64, no rounding
EN         histogram of uint8 vs of scaled doubles; log base    256 bins of round-half-up(clip(F, 0, 255)); log2
SD         population vs sample std                             population (divide by H*W)
SF         0-1 vs 0-255 scale; squared differences divided by   0-255; RF, CF = RMS over the differences that
           H*W or by the number of differences                  exist: H*(W-1) for RF, (H-1)*W for CF
AG         forward differences on an (H-1)x(W-1) crop vs         np.gradient: central (f[i+1]-f[i-1])/2 inside,
           central differences                                  one-sided f[1]-f[0] / f[-1]-f[-2] at borders; mean
                                                                over all H*W pixels of sqrt((Gx^2+Gy^2)/2)
MI         log2 (bits) vs ln (nats); NMI variants; bin count     log2; 256 x 256 joint histogram of the rounded
                                                                images as for EN; MI(A,F) + MI(B,F)
SCD        -                                                    corr2(F-B, A) + corr2(F-A, B); corr2 = 0 when
                                                                either input is constant (MATLAB gives NaN)
VIF        vifvec (wavelet GSM) vs vifp_mscale (pixel); sum of   vifp_mscale: pixel domain, 4 scales, 'valid'
           per-scale ratios vs total ratio; sigma_n^2 = 2 for   filtering, every 2nd pixel from index 0 after
           0-255 vs 0.1 or 2 on 0-1 data; 'same' vs 'valid'     filtering (scales > 1), sigma_n^2 = 2 absolute,
                                                                VIFp = sum(num)/sum(den) over all scales
Qabf       conv2 zero padding vs symmetric padding; Sobel       Sobel as conv2(I, h) with h = [-1 0 1; -2 0 2;
           signs (conv2 vs filter2: flips Sx against Sy, which  -1 0 1] (Sx), [1 2 1; 0 0 0; -1 -2 -1] (Sy),
           changes results through the pi/2 rule);              'same' with zero padding (MATLAB default);
           A_AF = 1-|da|/(pi/2) vs ||da|-pi/2|/(pi/2);           1-|da|/(pi/2); G = 1 when
           G when g_A == g_F (some code returns g_F);           g_A == g_F (also 0/0); Tg .9994 kg -15 Dg .5
           Petrovic (Tg .9994 ...) vs Liu (1, -10, .5, ...)     Ta .9879 ka -22 Da .8, L = 1; 0 if no edges at all;
                                                                Sx == 0 tested as |Sx| < 1e-9 (round-off)
SSIM       ssim_index.m (2004, no resizing) vs ssim.m (2009,    11x11 Gaussian sigma 1.5, 'valid' windows (same as
           downsamples by round(min(H,W)/256)); skimage's       skimage's crop of its reflect-padded map), no
           7x7 uniform default; data_range                      downsampling, K1 .01, K2 .03, L 255, 1/N moments
MS_SSIM    negative contrast terms give complex powers          Wang 2003: 5 levels, weights .0448 .2856 .3001
                                                                .2363 .1333, 2x2 mean (symmetric edge) then every
                                                                2nd pixel; per-level means clipped at 0
Nabf       Petrovic 2005 artefacts vs Kumar 2013 modified       Kumar's modified N_m: AM = [g_F > g_A and
           (which counts artefacts only where F's edge beats    g_F > g_B] (ties within 1e-9 are not artefacts),
           both sources, aiming at Q + L + N = 1)               sum(AM((1-Q_AF)g_A + (1-Q_BF)g_B)) / sum(g_A+g_B);
                                                                Qabf's Sobel, Q maps and weights; lower is better
=========  ===================================================  ==================================================

Downsampling by "every 2nd pixel from index 0" (VIF) and 2x2 block means (MS-SSIM) are not mirror-symmetric
for every size: VIF is exactly invariant to a horizontal flip only when each intermediate width is odd
(W = 1 mod 8), MS-SSIM only when W is a multiple of 16. Qabf and Nabf are exactly flip-invariant only when no
Sobel Sx is 0 (the pi/2 rule has no mirror image). The other metrics are flip-invariant for any image.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

METRICS: tuple[str, ...] = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")
EXTRA_METRICS: tuple[str, ...] = ("Nabf", "MS_SSIM")
ALL_METRICS: tuple[str, ...] = METRICS + EXTRA_METRICS

BGR2GRAY_PERMILLE = (114, 587, 299)  # OpenCV's weights 0.114, 0.587, 0.299 in thousandths, order B, G, R
VIF_SIGMA_N2 = 2.0
SSIM_K1, SSIM_K2, SSIM_L = 0.01, 0.03, 255.0
SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIDE = 161  # the 5th level, ceil(side / 16), must still hold an 11-pixel window
QABF_PARAMS = {"Tg": 0.9994, "kg": -15.0, "Dg": 0.5, "Ta": 0.9879, "ka": -22.0, "Da": 0.8}
QABF_ZERO_SX = 1e-9  # |Sobel x| below this counts as 0 for the orientation (see _sobel)
# Correlation kernels equal to MATLAB conv2(I, [-1 0 1; -2 0 2; -1 0 1]) and conv2(I, [1 2 1; 0 0 0; -1 -2 -1]), the
# Qabf code most IVIF papers run: Sx > 0 where intensity falls to the right, Sy > 0 where it rises downwards.
_SOBEL_X = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64)
_SOBEL_Y = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64)


# ---------------------------------------------------------------------------------------------- input handling
def to_gray(img: np.ndarray, order: str = "bgr") -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) -> (H, W) float64; 3 channels are BGR (``order="bgr"``) or RGB."""
    if order not in ("bgr", "rgb"):
        raise ValueError(f"to_gray order must be 'bgr' or 'rgb', got {order!r}")
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return arr.astype(np.float64, copy=False)
    if arr.ndim == 3 and arr.shape[2] == 3:
        # Integer weights / 1000: exact sums for integer images, so a gray value of exactly k + 0.5 stays exact and
        # its histogram bin does not depend on the order of floating-point additions.
        weights = np.array(BGR2GRAY_PERMILLE if order == "bgr" else BGR2GRAY_PERMILLE[::-1], dtype=np.float64)
        return (arr.astype(np.float64) @ weights) / 1000.0
    raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {arr.shape}")


def _gray_all(*images: np.ndarray) -> list[np.ndarray]:
    """Gray float64 copies (no copy for float64 2-D input); ValueError naming the shapes unless all match."""
    grays = [to_gray(im) for im in images]
    if len({g.shape for g in grays}) > 1:
        shapes = ", ".join(str(np.shape(im)) for im in images)
        raise ValueError(f"images must share height and width, got shapes {shapes}")
    return grays


def _quantize(img: np.ndarray) -> np.ndarray:
    """Histogram bins: clip to [0, 255], then round half up (MATLAB's uint8()), as integer indices 0..255."""
    return np.floor(np.clip(img, 0.0, 255.0) + 0.5).astype(np.intp)


# ------------------------------------------------------------------------------------------- F-only metrics
def entropy(fused: np.ndarray) -> float:
    """EN = -sum p log2 p over the 256-bin histogram of the rounded image (bits)."""
    (f,) = _gray_all(fused)
    hist = np.bincount(_quantize(f).ravel(), minlength=256)
    p = hist[hist > 0] / f.size
    return float(-np.sum(p * np.log2(p)) + 0.0)


def standard_deviation(fused: np.ndarray) -> float:
    """SD = population standard deviation of F."""
    (f,) = _gray_all(fused)
    return float(np.std(f))


def spatial_frequency(fused: np.ndarray) -> float:
    """SF = sqrt(RF^2 + CF^2); RF (CF) = RMS of the horizontal (vertical) 1-pixel differences, 0-255 scale."""
    (f,) = _gray_all(fused)
    rf2 = np.mean(np.diff(f, axis=1) ** 2)
    cf2 = np.mean(np.diff(f, axis=0) ** 2)
    return float(math.sqrt(rf2 + cf2))


def average_gradient(fused: np.ndarray) -> float:
    """AG = mean sqrt((Gx^2 + Gy^2) / 2), np.gradient differences (central inside, one-sided at borders)."""
    (f,) = _gray_all(fused)
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


# -------------------------------------------------------------------------------------- information metrics
def mutual_information_pair(x: np.ndarray, y: np.ndarray) -> float:
    """MI(X, Y) = sum p(x,y) log2(p(x,y) / (p(x) p(y))) from the 256x256 joint histogram of rounded images."""
    x, y = _gray_all(x, y)
    joint = np.bincount((_quantize(x) * 256 + _quantize(y)).ravel(), minlength=256 * 256).reshape(256, 256)
    joint = joint / x.size
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    outer = np.outer(px, py)
    return float(np.sum(joint[nz] * np.log2(joint[nz] / outer[nz])))


def mutual_information(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> float:
    """MI = MI(A, F) + MI(B, F) in bits."""
    a, b, f = _gray_all(ir, vi, fused)
    return mutual_information_pair(a, f) + mutual_information_pair(b, f)


def corr2(x: np.ndarray, y: np.ndarray) -> float:
    """MATLAB corr2: 2-D Pearson correlation; 0.0 when either image is constant (MATLAB: NaN)."""
    x, y = _gray_all(x, y)
    xd, yd = x - x.mean(), y - y.mean()
    den = math.sqrt(float(np.sum(xd * xd)) * float(np.sum(yd * yd)))
    return float(np.sum(xd * yd)) / den if den > 0 else 0.0


def scd(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> float:
    """SCD = corr2(F - B, A) + corr2(F - A, B) (sum of the correlations of differences)."""
    a, b, f = _gray_all(ir, vi, fused)
    return corr2(f - b, a) + corr2(f - a, b)


# ------------------------------------------------------------------------------------------ windowed filters
def _gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB's fspecial('gaussian', size, sigma)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(img: np.ndarray, kernel_1d: np.ndarray) -> np.ndarray:
    """Separable filtering keeping only outputs whose window lies inside the image (MATLAB 'valid')."""
    r = (len(kernel_1d) - 1) // 2
    h, w = img.shape
    if h < len(kernel_1d) or w < len(kernel_1d):
        raise ValueError(f"image of shape {img.shape} is smaller than a {len(kernel_1d)}-pixel window")
    out = cv2.sepFilter2D(np.ascontiguousarray(img), cv2.CV_64F, kernel_1d, kernel_1d, borderType=cv2.BORDER_REFLECT)
    return out[r : h - r, r : w - r]


class _Moments:
    """Local Gaussian mean and second moment of one image ('valid'), cached so F is filtered once."""

    def __init__(self, img: np.ndarray, kernel_1d: np.ndarray) -> None:
        self.img, self.kernel = img, kernel_1d
        self.mu = _filter_valid(img, kernel_1d)
        self.var = _filter_valid(img * img, kernel_1d) - self.mu * self.mu

    def cov(self, other: _Moments) -> np.ndarray:
        return _filter_valid(self.img * other.img, self.kernel) - self.mu * other.mu


# ------------------------------------------------------------------------------------------------------ VIF
def _vif_scale_terms(s11: np.ndarray, s22: np.ndarray, s12: np.ndarray) -> tuple[float, float]:
    """One scale of vifp_mscale: sums of log10(1 + g^2 s1^2 / (sv^2 + sn^2)) and log10(1 + s1^2 / sn^2)."""
    s11, s22 = np.maximum(s11, 0.0), np.maximum(s22, 0.0)
    g = s12 / (s11 + 1e-10)
    sv = s22 - g * s12
    flat_ref = s11 < 1e-10  # no signal in the reference: no gain, all of F's variance is noise
    g[flat_ref], sv[flat_ref], s11[flat_ref] = 0.0, s22[flat_ref], 0.0
    flat_dist = s22 < 1e-10
    g[flat_dist], sv[flat_dist] = 0.0, 0.0
    negative = g < 0  # anti-correlated: treated as no gain
    sv[negative], g[negative] = s22[negative], 0.0
    sv = np.maximum(sv, 1e-10)
    num = np.sum(np.log1p(g * g * s11 / (sv + VIF_SIGMA_N2))) / math.log(10.0)
    den = np.sum(np.log1p(s11 / VIF_SIGMA_N2)) / math.log(10.0)
    return float(num), float(den)


def _vifp_many(refs: Sequence[np.ndarray], dist: np.ndarray) -> list[float]:
    """VIFp(ref_i, dist) for each reference, sharing the filtering of dist."""
    nums, dens = [0.0] * len(refs), [0.0] * len(refs)
    refs = list(refs)
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1  # 17, 9, 5, 3
        kernel = _gaussian_1d(n, n / 5.0)
        if scale > 1:
            refs = [_filter_valid(r, kernel)[::2, ::2] for r in refs]
            dist = _filter_valid(dist, kernel)[::2, ::2]
        d = _Moments(dist, kernel)
        for i, ref in enumerate(refs):
            r = _Moments(ref, kernel)
            num, den = _vif_scale_terms(r.var, d.var, r.cov(d))
            nums[i] += num
            dens[i] += den
    return [num / den if den > 0 else 0.0 for num, den in zip(nums, dens)]


def vifp(ref: np.ndarray, dist: np.ndarray) -> float:
    """Sheikh-Bovik multi-scale pixel-domain VIF (vifp_mscale) of dist against ref; 1.0 when dist == ref."""
    ref, dist = _gray_all(ref, dist)
    return _vifp_many([ref], dist)[0]


def vif(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> float:
    """VIF = VIFp(A, F) + VIFp(B, F)."""
    a, b, f = _gray_all(ir, vi, fused)
    return sum(_vifp_many([a, b], f))


# ---------------------------------------------------------------------------------------------- Qabf / Nabf
def _sobel(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength g = sqrt(Sx^2 + Sy^2) and orientation atan(Sy / Sx) (pi/2 where Sx == 0), zero padding.

    The signs matter through the pi/2 rule alone: it has no mirror image (a flip negates atan(Sy / Sx) but not the
    pi/2), so the sign convention is MATLAB conv2's (see _SOBEL_X) and Qabf/Nabf are exactly flip-invariant only
    where no Sx is 0. atan(Sy / Sx) jumps from +pi/2 to -pi/2 as Sx crosses 0, so "Sx == 0" is tested as
    |Sx| < QABF_ZERO_SX: float round-off (~1e-13 on 0-255 data) must not decide the orientation. Gray images from
    integer BGR have Sobel responses that are multiples of 1/1000 (1/2000 for averages), far above it when non-zero.
    """
    sx = cv2.filter2D(img, cv2.CV_64F, _SOBEL_X, borderType=cv2.BORDER_CONSTANT)
    sy = cv2.filter2D(img, cv2.CV_64F, _SOBEL_Y, borderType=cv2.BORDER_CONSTANT)
    g = np.sqrt(sx * sx + sy * sy)
    zero = np.abs(sx) < QABF_ZERO_SX
    alpha = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, sx)))
    return g, alpha


def _preservation(g_s: np.ndarray, a_s: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Q_SF = Qg * Qa: G_SF = g_F/g_S if g_S > g_F else g_S/g_F (1 when equal, 0/0 included), A_SF = 1 - |da|/(pi/2)."""
    lo, hi = np.minimum(g_s, g_f), np.maximum(g_s, g_f)
    strength = np.divide(lo, hi, out=np.ones_like(lo), where=hi > 0)
    orientation = 1.0 - np.abs(a_s - a_f) / (np.pi / 2)
    p = QABF_PARAMS
    qg = p["Tg"] / (1.0 + np.exp(p["kg"] * (strength - p["Dg"])))
    qa = p["Ta"] / (1.0 + np.exp(p["ka"] * (orientation - p["Da"])))
    return qg * qa


def _edge_terms(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, ...]:
    """(Q_AF, Q_BF, g_A, g_B, g_F) per pixel."""
    (ga, aa), (gb, ab), (gf, af) = _sobel(a), _sobel(b), _sobel(f)
    return _preservation(ga, aa, gf, af), _preservation(gb, ab, gf, af), ga, gb, gf


def _qabf_from(terms: tuple[np.ndarray, ...]) -> float:
    q_af, q_bf, ga, gb, _ = terms  # weights w = g^L with L = 1
    total = float(np.sum(ga + gb))
    return float(np.sum(q_af * ga + q_bf * gb)) / total if total > 0 else 0.0


def _nabf_from(terms: tuple[np.ndarray, ...]) -> float:
    q_af, q_bf, ga, gb, gf = terms
    artefact = (gf > ga + QABF_ZERO_SX) & (gf > gb + QABF_ZERO_SX)  # strictly stronger, beyond round-off
    total = float(np.sum(ga + gb))
    return float(np.sum(artefact * ((1.0 - q_af) * ga + (1.0 - q_bf) * gb))) / total if total > 0 else 0.0


def qabf(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> float:
    """Xydeas-Petrovic edge preservation sum(Q_AF g_A + Q_BF g_B) / sum(g_A + g_B), in [0, Tg*Ta)."""
    return _qabf_from(_edge_terms(*_gray_all(ir, vi, fused)))


def nabf(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> float:
    """Kumar's modified fusion-artefact measure N_m (lower is better); see the module table."""
    return _nabf_from(_edge_terms(*_gray_all(ir, vi, fused)))


# ------------------------------------------------------------------------------------------- SSIM / MS-SSIM
_C1, _C2 = (SSIM_K1 * SSIM_L) ** 2, (SSIM_K2 * SSIM_L) ** 2


def _ssim_cs(x: _Moments, y: _Moments) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term over the 'valid' windows."""
    cs_map = (2.0 * x.cov(y) + _C2) / (x.var + y.var + _C2)
    lum_map = (2.0 * x.mu * y.mu + _C1) / (x.mu * x.mu + y.mu * y.mu + _C1)
    return float(np.mean(lum_map * cs_map)), float(np.mean(cs_map))


def _ssim_many(refs: Sequence[np.ndarray], f: np.ndarray) -> list[float]:
    kernel = _gaussian_1d(SSIM_WINDOW, SSIM_SIGMA)
    fm = _Moments(f, kernel)
    return [_ssim_cs(fm, _Moments(r, kernel))[0] for r in refs]


def ssim_pair(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 SSIM (ssim_index.m): 11x11 Gaussian sigma 1.5, 'valid' windows, L = 255."""
    x, y = _gray_all(x, y)
    return _ssim_many([y], x)[0]


def ssim(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> float:
    """SSIM = SSIM(F, A) + SSIM(F, B)."""
    a, b, f = _gray_all(ir, vi, fused)
    return sum(_ssim_many([a, b], f))


def _half(img: np.ndarray) -> np.ndarray:
    """MATLAB imfilter(img, ones(2)/4, 'symmetric') then img(1:2:end, 1:2:end): means of 2x2 blocks."""
    p = np.pad(img, ((0, 1), (0, 1)), mode="edge")
    return ((p[:-1, :-1] + p[1:, :-1] + p[:-1, 1:] + p[1:, 1:]) / 4.0)[::2, ::2]


def ms_ssim_pair(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2003 MS-SSIM, 5 levels: prod(cs_1..4 ^ w_1..4) * ssim_5 ^ w_5, each mean clipped at 0."""
    x, y = _gray_all(x, y)
    if min(x.shape) < MS_SSIM_MIN_SIDE:
        raise ValueError(f"MS-SSIM needs at least {MS_SSIM_MIN_SIDE} pixels on the short side, got shape {x.shape}")
    kernel = _gaussian_1d(SSIM_WINDOW, SSIM_SIGMA)
    result = 1.0
    for level, weight in enumerate(MS_SSIM_WEIGHTS):
        mean_ssim, mean_cs = _ssim_cs(_Moments(x, kernel), _Moments(y, kernel))
        last = level == len(MS_SSIM_WEIGHTS) - 1
        result *= max(mean_ssim if last else mean_cs, 0.0) ** weight
        if not last:
            x, y = _half(x), _half(y)
    return result


def ms_ssim(ir: np.ndarray, vi: np.ndarray, fused: np.ndarray) -> float:
    """MS_SSIM = MS-SSIM(F, A) + MS-SSIM(F, B)."""
    a, b, f = _gray_all(ir, vi, fused)
    return ms_ssim_pair(f, a) + ms_ssim_pair(f, b)


# ---------------------------------------------------------------------------------------------- front door
def fusion_metrics(
    ir: np.ndarray, vi: np.ndarray, fused: np.ndarray, metrics: Iterable[str] = METRICS
) -> dict[str, float]:
    """Convert once, then compute the requested metrics (names from ``ALL_METRICS``) in the order given."""
    names = tuple(metrics)
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown fusion metric(s) {unknown}; known: {', '.join(ALL_METRICS)}")
    a, b, f = _gray_all(ir, vi, fused)
    edge_terms = _edge_terms(a, b, f) if {"Qabf", "Nabf"} & set(names) else None
    compute = {
        "EN": lambda: entropy(f),
        "SD": lambda: standard_deviation(f),
        "SF": lambda: spatial_frequency(f),
        "AG": lambda: average_gradient(f),
        "MI": lambda: mutual_information(a, b, f),
        "SCD": lambda: scd(a, b, f),
        "VIF": lambda: sum(_vifp_many([a, b], f)),
        "Qabf": lambda: _qabf_from(edge_terms),
        "SSIM": lambda: sum(_ssim_many([a, b], f)),
        "Nabf": lambda: _nabf_from(edge_terms),
        "MS_SSIM": lambda: ms_ssim(a, b, f),
    }
    return {name: float(compute[name]()) for name in names}
