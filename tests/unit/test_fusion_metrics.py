"""Fusion metrics: closed forms, hand-computed values, invariances, colour handling, scikit-image SSIM, and agreement
with the independent implementation in ivfusion.metrics.reference (random images and, when present, real MSRS pairs)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ivfusion.metrics import fusion as fm
from ivfusion.metrics import reference as ref
from ivfusion.metrics.fusion import ALL_METRICS, METRICS, fusion_metrics, mutual_information_pair, to_gray
from ivfusion.paths import shared_root


REL = 1e-3  # the evaluation's agreement contract
TIGHT = 1e-8  # what the two actually achieve on synthetic data (~1e-12): catches small definition drift
MSRS = shared_root() / "datasets" / "msrs"
MSRS_STEMS = ("00001D", "00003N", "00010N")
P = fm.QABF_PARAMS
Q_MAX = P["Tg"] / (1 + math.exp(P["kg"] * (1 - P["Dg"]))) * P["Ta"] / (1 + math.exp(P["ka"] * (1 - P["Da"])))


def _scene(seed: int, shape: tuple[int, int] = (97, 121), integer: bool = True) -> np.ndarray:
    """Smooth structure (blurred blobs and a ramp) plus noise, about 0-255.

    integer: rounded and clipped to uint8 levels (flat saturated patches included). Otherwise continuous and not
    clipped, so that no Sobel response is exactly 0 (the condition for Qabf's exact flip invariance).
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    img = np.linspace(20, 200, w)[None, :] * np.ones((h, 1))
    img += cv2.GaussianBlur(rng.uniform(-120, 120, shape), (0, 0), 3) * 4
    img += rng.normal(0, 6, shape)
    return np.clip(np.round(img), 0, 255) if integer else img


def _assert_close(got: dict[str, float], want: dict[str, float], rel: float = REL, abs_tol: float = 1e-9) -> None:
    assert got.keys() == want.keys()
    bad = {k: (got[k], want[k]) for k in got if got[k] != pytest.approx(want[k], rel=rel, abs=abs_tol)}
    assert not bad, f"metrics differ beyond rel {rel}: {bad}"


# ------------------------------------------------------------------------------------------------ closed forms
def test_identical_images_give_ssim_2_vif_2_and_maximal_qabf() -> None:
    a = _scene(0)
    m = fusion_metrics(a, a, a, METRICS + ("Nabf",))
    assert m["SSIM"] == pytest.approx(2.0, abs=1e-6)
    assert m["VIF"] == pytest.approx(2.0, abs=1e-9)  # off only by the 1e-10 clamps
    assert m["Qabf"] == pytest.approx(Q_MAX, abs=1e-12)  # G = 1 and A = 1 everywhere
    assert m["Nabf"] == 0.0  # F is nowhere stronger than both sources
    assert m["SCD"] == 0.0  # F - B is constant: corr2 is defined as 0 (MATLAB: NaN)
    assert m["MI"] == pytest.approx(2 * m["EN"], rel=1e-12)
    big = _scene(1, (176, 200))
    assert fm.ms_ssim(big, big, big) == pytest.approx(2.0, abs=1e-9)


def test_constant_image_has_zero_en_sd_sf_ag() -> None:
    c = np.full((40, 50), 77.0)
    m = fusion_metrics(_scene(1, (40, 50)), _scene(2, (40, 50)), c, ("EN", "SD", "SF", "AG"))
    assert m == {"EN": 0.0, "SD": 0.0, "SF": 0.0, "AG": 0.0}


def test_uniform_histogram_has_entropy_8() -> None:
    img = np.random.default_rng(3).permutation(np.arange(256 * 256) % 256).reshape(256, 256).astype(np.uint8)
    assert fm.entropy(img) == pytest.approx(8.0, abs=1e-12)
    assert fm.entropy(img.astype(np.float64) + 0.49) == pytest.approx(8.0, abs=1e-12)  # rounds to the same bins


def test_entropy_rounds_half_up_and_clips() -> None:
    # 0.5 -> 1, 1.5 -> 2, -3 -> 0, 300 -> 255: four bins of one pixel each.
    assert fm.entropy(np.array([[0.5, 1.5], [-3.0, 300.0]])) == pytest.approx(2.0)
    assert fm.entropy(np.array([[0.5, 1.0], [255.0, 300.0]])) == pytest.approx(1.0)


def test_mutual_information_of_an_image_with_itself_is_its_entropy() -> None:
    x = _scene(4)
    assert mutual_information_pair(x, x) == pytest.approx(fm.entropy(x), rel=1e-12)
    assert mutual_information_pair(x, np.full_like(x, 9.0)) == pytest.approx(0.0, abs=1e-12)
    y = _scene(5)
    assert mutual_information_pair(x, y) == pytest.approx(mutual_information_pair(y, x), rel=1e-12)


def test_spatial_frequency_and_average_gradient_by_hand() -> None:
    checker = (np.indices((6, 8)).sum(axis=0) % 2) * 255.0  # every 1-pixel difference is +-255
    assert fm.spatial_frequency(checker) == pytest.approx(255 * math.sqrt(2))
    i, j = np.indices((5, 7), dtype=np.float64)
    ramp = 2 * i + 5 * j  # RF = 5, CF = 2; gradients 5 and 2 everywhere (borders included)
    assert fm.spatial_frequency(ramp) == pytest.approx(math.sqrt(29))
    assert fm.average_gradient(ramp) == pytest.approx(math.sqrt(29 / 2))
    parabola = np.array([[0.0, 1.0, 4.0, 9.0]] * 2)  # Gx = 1 (one-sided), 2, 4 (central), 5 (one-sided); Gy = 0
    assert fm.average_gradient(parabola) == pytest.approx(3 / math.sqrt(2))
    assert fm.standard_deviation(np.array([[0.0, 2.0], [4.0, 6.0]])) == pytest.approx(math.sqrt(5))  # population


def test_qabf_source_symmetry_and_which_source_f_copies() -> None:
    textured, smooth = _scene(6), cv2.GaussianBlur(_scene(7), (0, 0), 4)
    q_a = fm.qabf(textured, smooth, textured)
    q_b = fm.qabf(textured, smooth, smooth)
    assert q_a == fm.qabf(smooth, textured, textured)  # swapping the sources' roles changes nothing
    assert q_b == fm.qabf(smooth, textured, smooth)
    assert 0 < q_b < q_a < Q_MAX  # copying the edge-rich source keeps more edge information
    # F = A: the A term is maximal, so Qabf is the g-weighted blend of Q_MAX and the B->A preservation.
    q_af, q_bf, ga, gb, _ = fm._edge_terms(textured, smooth, textured)
    assert np.allclose(q_af, Q_MAX)
    assert q_a == pytest.approx((Q_MAX * ga.sum() + (q_bf * gb).sum()) / (ga.sum() + gb.sum()), rel=1e-12)


def test_nabf_closed_form_for_doubled_edges() -> None:
    a = _scene(8) / 2  # F = 2A with A = B: G = 1/2 and equal orientations wherever g_A > 0
    qg = P["Tg"] / 2
    qa = P["Ta"] / (1 + math.exp(P["ka"] * (1 - P["Da"])))
    assert fm.nabf(a, a, 2 * a) == pytest.approx(1 - qg * qa, rel=1e-12)
    assert fm.nabf(a, _scene(9), (a + _scene(9)) / 2) == 0.0  # an average is never stronger than both


# -------------------------------------------------------------------------------------------------- invariances
def test_metrics_unchanged_by_a_horizontal_flip() -> None:
    # Continuous values (no Sobel Sx exactly 0) and W = 121 = 1 mod 8 (VIF's every-2nd-pixel subsampling then
    # keeps both borders), the documented conditions for exact flip invariance.
    a, b, f = (_scene(s, (90, 121), integer=False) for s in (10, 11, 12))
    names = METRICS + ("Nabf",)
    _assert_close(fusion_metrics(a[:, ::-1], b[:, ::-1], f[:, ::-1], names), fusion_metrics(a, b, f, names), 1e-10)
    a, b, f = (_scene(s, (176, 256), integer=False) for s in (13, 14, 15))  # MS-SSIM: W a multiple of 16
    assert fm.ms_ssim(a[:, ::-1], b[:, ::-1], f[:, ::-1]) == pytest.approx(fm.ms_ssim(a, b, f), rel=1e-10)


def test_metrics_symmetric_in_the_two_sources() -> None:
    a, b = _scene(16), _scene(17)
    f = np.maximum(a, b)
    assert fm.scd(a, b, f) == fm.scd(b, a, f)
    _assert_close(fusion_metrics(b, a, f, ALL_METRICS[:-1]), fusion_metrics(a, b, f, ALL_METRICS[:-1]), 1e-12)


# ------------------------------------------------------------------------------------------------- input handling
def test_colour_input_equals_its_gray_conversion() -> None:
    rng = np.random.default_rng(18)
    bgr = rng.integers(0, 256, (97, 121, 3), dtype=np.uint8)
    gray = to_gray(bgr)
    assert gray.dtype == np.float64 and gray.shape == (97, 121)
    # cv2 rounds, with 14-bit fixed-point weights (0.29901, 0.58697, 0.11401): within 0.51 of the exact sum.
    assert np.abs(gray - cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).max() <= 0.51
    assert np.array_equal(to_gray(bgr[:, :, ::-1], order="rgb"), gray)
    assert np.array_equal(to_gray(bgr[:, :, :1]), bgr[:, :, 0].astype(np.float64))
    a, f = _scene(19), _scene(20)
    f_bgr = np.repeat(f.astype(np.uint8)[:, :, None], 3, axis=2)  # equal channels: gray == the channel
    want = fusion_metrics(a, gray, f, ALL_METRICS[:-1])
    assert fusion_metrics(a, bgr, f_bgr, ALL_METRICS[:-1]) == want


def test_shape_mismatch_and_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match=r"\(10, 12\).*\(10, 13\)"):
        fusion_metrics(np.zeros((10, 12)), np.zeros((10, 13)), np.zeros((10, 12)))
    with pytest.raises(ValueError, match="PSNR"):
        fusion_metrics(np.zeros((30, 30)), np.zeros((30, 30)), np.zeros((30, 30)), ("EN", "PSNR"))
    with pytest.raises(ValueError, match="order"):
        to_gray(np.zeros((4, 4, 3)), order="yuv")
    with pytest.raises(ValueError, match="shape"):
        to_gray(np.zeros((4, 4, 4)))
    with pytest.raises(ValueError, match="161"):
        fm.ms_ssim_pair(np.zeros((100, 300)), np.zeros((100, 300)))
    with pytest.raises(ValueError, match="window"):
        fm.vifp(np.zeros((16, 40)), np.zeros((16, 40)))


def test_front_door_matches_the_single_metric_functions() -> None:
    a, b, f = _scene(21, (176, 180)), _scene(22, (176, 180)), _scene(23, (176, 180))
    m = fusion_metrics(a, b, f, ALL_METRICS[::-1])
    assert tuple(m) == ALL_METRICS[::-1] and all(isinstance(v, float) for v in m.values())
    singles = {
        "EN": fm.entropy(f), "SD": fm.standard_deviation(f), "SF": fm.spatial_frequency(f),
        "AG": fm.average_gradient(f), "MI": fm.mutual_information(a, b, f), "SCD": fm.scd(a, b, f),
        "VIF": fm.vifp(a, f) + fm.vifp(b, f), "Qabf": fm.qabf(a, b, f),
        "SSIM": fm.ssim_pair(f, a) + fm.ssim_pair(f, b), "Nabf": fm.nabf(a, b, f),
        "MS_SSIM": fm.ms_ssim_pair(f, a) + fm.ms_ssim_pair(f, b),
    }  # fmt: skip
    _assert_close(m, {k: singles[k] for k in m}, 1e-12)


# --------------------------------------------------------------------------------------------- other implementations
def test_ssim_matches_scikit_image() -> None:
    # skimage reflect-pads, then averages only pixels at least (11 - 1) / 2 = 5 from the border: the same windows as
    # 'valid' filtering, so no border difference remains and the two agree to float round-off.
    from skimage import data
    from skimage.metrics import structural_similarity

    x = data.camera().astype(np.float64)
    noisy = cv2.GaussianBlur(x, (0, 0), 2) + np.random.default_rng(24).normal(0, 8, x.shape)
    pairs = [(x, noisy), (x, 255 - x)]
    if MSRS.is_dir():
        ir, vi = (cv2.imread(str(MSRS / sub / "00001D.png")) for sub in ("ir", "vi"))
        pairs.append((to_gray(ir), to_gray(vi)))
    for p, q in pairs:
        want = structural_similarity(
            p, q, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
        )
        assert fm.ssim_pair(p, q) == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("integer", [True, False], ids=["integer", "continuous"])
def test_agrees_with_reference_on_random_images(integer: bool) -> None:
    rng = np.random.default_rng(25 if integer else 26)
    shape = (176, 183)
    a = _scene(27, shape, integer)
    bgr = rng.integers(0, 256, shape + (3,)).astype(np.uint8) if integer else rng.uniform(0, 255, shape + (3,))
    for f in ((a + to_gray(bgr)) / 2, rng.uniform(0, 255, shape), np.maximum(a, to_gray(bgr))):
        got, want = fusion_metrics(a, bgr, f, ALL_METRICS), ref.reference_metrics(a, bgr, f, ALL_METRICS)
        _assert_close(got, want, REL)
        _assert_close(got, want, TIGHT)


def test_qabf_sobel_sign_convention_is_matlab_conv2() -> None:
    # A: a horizontal edge, bright below, so inside it Sx = 0 and alpha_A = pi/2 by rule. F adds a faint ramp:
    # at that edge alpha_F is -atan(big) with conv2's signs if F brightens to the right (orientation lost), and
    # +atan(big) if it darkens (kept). The zero-padded bottom border, where Sy has the other sign, behaves the other
    # way round, so neither score is extreme, but the pi/2 rule has no mirror image and the two must differ.
    a = np.zeros((40, 41))
    a[20:, :] = 200.0
    ramp = 0.01 * np.arange(41)[None, :]
    brighter_right, darker_right = fm.qabf(a, a, a + ramp), fm.qabf(a, a, a - ramp)
    assert brighter_right == pytest.approx(ref.qabf(a, a, a + ramp), rel=1e-12)
    assert darker_right == pytest.approx(ref.qabf(a, a, a - ramp), rel=1e-12)
    assert brighter_right == pytest.approx(0.49605, abs=1e-5) and darker_right == pytest.approx(0.73541, abs=1e-5)


def test_reference_exposes_the_same_default_keys() -> None:
    a = _scene(28)
    assert ref.REFERENCE_METRICS == METRICS and ref.REFERENCE_METRICS + ref.REFERENCE_EXTRA == ALL_METRICS
    assert tuple(ref.reference_metrics(a, a, a)) == METRICS


@pytest.mark.skipif(not MSRS.is_dir(), reason=f"MSRS not found at {MSRS} (set IVFUSION_SHARED)")
@pytest.mark.parametrize("stem", MSRS_STEMS)
def test_agrees_with_reference_on_msrs(stem: str) -> None:
    ir = cv2.imread(str(MSRS / "ir" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
    vi = cv2.imread(str(MSRS / "vi" / f"{stem}.png"), cv2.IMREAD_COLOR)  # BGR
    fused = [(ir + to_gray(vi)) / 2]
    peer = shared_root() / "peers" / "msrs" / "SeAFusion" / f"{stem}.png"
    if peer.is_file():
        fused.append(cv2.imread(str(peer), cv2.IMREAD_COLOR))
    for f in fused:
        _assert_close(fusion_metrics(ir, vi, f, ALL_METRICS), ref.reference_metrics(ir, vi, f, ALL_METRICS))
    if not peer.is_file():
        pytest.skip(f"average fusion checked; no SeAFusion output at {peer}")
