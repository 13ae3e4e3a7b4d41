"""Round trips, views and rejections of raw image buffers."""

from __future__ import annotations

import array

import cv2
import numpy as np
import pytest

from ivfusion.errors import ImageDecodeError
from ivfusion.imaging.encodings import (
    SUPPORTED_ENCODINGS,
    bytes_per_pixel,
    decode_image,
    encode_image,
    to_bgr8,
    to_mono8,
)

H, W = 7, 11  # odd sizes so that rows and columns cannot be confused


def _sample(encoding: str, h: int = H, w: int = W, seed: int = 0) -> np.ndarray:
    info = SUPPORTED_ENCODINGS[encoding]
    shape = (h, w) if info.channels == 1 else (h, w, info.channels)
    rng = np.random.default_rng(seed)
    if info.dtype == np.float32:
        return rng.uniform(250.0, 320.0, shape).astype(np.float32)  # Kelvin-like
    return rng.integers(0, np.iinfo(info.dtype).max, shape, endpoint=True, dtype=info.dtype)


def _padded(img: np.ndarray, encoding: str, pad: int) -> tuple[bytearray, int]:
    data, step = encode_image(img, encoding)
    rows = [data[r * step : (r + 1) * step] + bytes([0xAB] * pad) for r in range(img.shape[0])]
    return bytearray(b"".join(rows)), step + pad


def test_supported_encodings_are_the_documented_ones() -> None:
    assert set(SUPPORTED_ENCODINGS) == {
        "mono8", "mono16", "16UC1", "8UC1", "8UC3", "rgb8", "bgr8", "rgba8", "bgra8", "32FC1"}


@pytest.mark.parametrize(
    ("encoding", "bpp"),
    [("mono8", 1), ("8UC1", 1), ("mono16", 2), ("16UC1", 2), ("32FC1", 4), ("8UC3", 3), ("rgb8", 3),
     ("bgr8", 3), ("rgba8", 4), ("bgra8", 4)],
)
def test_bytes_per_pixel(encoding: str, bpp: int) -> None:
    assert bytes_per_pixel(encoding) == bpp


@pytest.mark.parametrize("encoding", list(SUPPORTED_ENCODINGS))
@pytest.mark.parametrize("container", [bytes, bytearray, memoryview, "array", "ndarray"])
def test_round_trip_every_encoding_and_container(encoding: str, container: object) -> None:
    img = _sample(encoding)
    data, step = encode_image(img, encoding)
    assert step == W * bytes_per_pixel(encoding)
    assert len(data) == step * H
    if container == "array":
        buf: object = array.array("B", data)
    elif container == "ndarray":
        buf = np.frombuffer(data, np.uint8).copy()
    else:
        buf = container(data)  # type: ignore[operator]
    out = decode_image(buf, W, H, step, encoding)
    assert out.shape == img.shape
    assert out.dtype == img.dtype and out.dtype.isnative
    np.testing.assert_array_equal(out, img)


@pytest.mark.parametrize("encoding", list(SUPPORTED_ENCODINGS))
@pytest.mark.parametrize("pad", [1, 3, 8])
def test_row_padding_is_skipped_without_copy(encoding: str, pad: int) -> None:
    img = _sample(encoding, seed=pad)
    buf, step = _padded(img, encoding, pad)
    out = decode_image(buf, W, H, step, encoding)
    np.testing.assert_array_equal(out, img)
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))


def test_decode_is_a_view_of_the_message_buffer() -> None:
    img = _sample("rgb8")
    buf = bytearray(encode_image(img, "rgb8")[0])
    out = decode_image(buf, W, H, W * 3, "rgb8")
    assert np.shares_memory(out, np.frombuffer(buf, np.uint8))
    buf[0] ^= 0xFF  # the view sees changes to the buffer, which a copy would not
    assert out[0, 0, 0] == img[0, 0, 0] ^ 0xFF

    arr = np.frombuffer(encode_image(_sample("mono16"), "mono16")[0], np.uint8).copy()
    assert np.shares_memory(decode_image(arr, W, H, W * 2, "mono16"), arr)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_big_endian_is_swapped_to_native(encoding: str) -> None:
    img = _sample(encoding, seed=5)
    be = img.astype(img.dtype.newbyteorder(">"))
    data = be.tobytes()
    out = decode_image(data, W, H, W * img.itemsize, encoding, is_bigendian=True)
    assert out.dtype.isnative and out.dtype == img.dtype
    np.testing.assert_array_equal(out, img)
    # Read as little endian the same bytes give other values (or non-finite floats): the flag matters.
    try:
        wrong = decode_image(data, W, H, W * img.itemsize, encoding)
    except ImageDecodeError:
        wrong = None
    assert wrong is None or not np.array_equal(wrong, img)


def test_big_endian_with_row_padding() -> None:
    img = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 300
    rows = [img[r].astype(">u2").tobytes() + b"\x00\x00\x00" for r in range(H)]
    out = decode_image(b"".join(rows), W, H, W * 2 + 3, "mono16", is_bigendian=True)
    np.testing.assert_array_equal(out, img)


def test_big_endian_flag_is_ignored_for_8_bit() -> None:
    img = _sample("bgr8")
    data, step = encode_image(img, "bgr8")
    np.testing.assert_array_equal(decode_image(data, W, H, step, "bgr8", is_bigendian=True), img)


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        (dict(encoding="yuv422"), ["yuv422", "mono8", "32FC1"]),
        (dict(width=0), ["mono16", "width=0"]),
        (dict(height=0), ["mono16", "height=0"]),
        (dict(max_pixels=50), ["mono16", "absurd", "77"]),
        (dict(step=W * 2 - 1), ["mono16", "step 21", "22"]),
        (dict(data=bytes(W * 2 * H - 1)), ["mono16", "expected", "154", "got 153"]),
        (dict(data=bytes(W * 2 * H + 2)), ["mono16", "expected", "154", "got 156"]),
    ],
)
def test_decode_errors_name_the_problem(kwargs: dict, fragments: list[str]) -> None:
    args = dict(data=bytes(W * 2 * H), width=W, height=H, step=W * 2, encoding="mono16") | kwargs
    max_pixels = args.pop("max_pixels", 50_000_000)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(**args, max_pixels=max_pixels)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_absurd_size_is_rejected_before_touching_data() -> None:
    with pytest.raises(ImageDecodeError, match="absurd"):
        decode_image(b"", 100_000, 100_000, 100_000, "mono8")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_thermal_is_rejected(bad: float) -> None:
    img = _sample("32FC1")
    img[3, 4] = bad
    data, step = encode_image(img, "32FC1")
    with pytest.raises(ImageDecodeError, match=r"32FC1.*1 NaN/inf"):
        decode_image(data, W, H, step, "32FC1")


def test_non_uint8_ndarray_data_is_rejected() -> None:
    with pytest.raises(ImageDecodeError, match="uint8"):
        decode_image(np.zeros(H * W, np.uint16), W, H, W * 2, "mono16")


def test_to_bgr8_conversions() -> None:
    rgb = _sample("rgb8")
    np.testing.assert_array_equal(to_bgr8(rgb, "rgb8"), rgb[..., ::-1])
    rgba = _sample("rgba8")
    np.testing.assert_array_equal(to_bgr8(rgba, "rgba8"), rgba[..., 2::-1])
    bgra = _sample("bgra8")
    np.testing.assert_array_equal(to_bgr8(bgra, "bgra8"), bgra[..., :3])
    mono = _sample("mono8")
    out = to_bgr8(mono, "mono8")
    assert out.shape == (H, W, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], mono)
    bgr = _sample("bgr8")
    assert to_bgr8(bgr, "bgr8") is bgr


def test_to_bgr8_accepts_padded_views() -> None:
    img = _sample("rgb8")
    buf, step = _padded(img, "rgb8", 5)
    np.testing.assert_array_equal(to_bgr8(decode_image(buf, W, H, step, "rgb8"), "rgb8"), img[..., ::-1])


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_to_bgr8_and_mono8_refuse_thermal_range(encoding: str) -> None:
    img = _sample(encoding)
    with pytest.raises(ImageDecodeError, match=encoding):
        to_bgr8(img, encoding)
    with pytest.raises(ImageDecodeError, match=encoding):
        to_mono8(img, encoding)


def test_to_mono8_uses_cv2_weights() -> None:
    bgr = _sample("bgr8")
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(to_mono8(bgr, "bgr8"), expected)
    np.testing.assert_array_equal(to_mono8(np.ascontiguousarray(bgr[..., ::-1]), "rgb8"), expected)
    bgra = np.dstack([bgr, np.full((H, W), 7, np.uint8)])
    np.testing.assert_array_equal(to_mono8(bgra, "bgra8"), expected)
    mono = _sample("mono8")
    assert to_mono8(mono, "mono8") is mono


def test_array_must_match_encoding() -> None:
    with pytest.raises(ImageDecodeError, match="rgb8"):
        encode_image(np.zeros((H, W), np.uint8), "rgb8")
    with pytest.raises(ImageDecodeError, match="mono16"):
        encode_image(np.zeros((H, W), np.uint8), "mono16")
    with pytest.raises(ImageDecodeError, match="bgr8"):
        to_bgr8(np.zeros((H, W, 4), np.uint8), "bgr8")


def test_encode_non_native_array_writes_native_bytes() -> None:
    img = _sample("mono16")
    data, step = encode_image(img.astype(">u2"), "mono16")
    np.testing.assert_array_equal(decode_image(data, W, H, step, "mono16"), img)


def test_check_layout_validates_header_without_pixels() -> None:
    from ivfusion.imaging.encodings import check_layout

    assert check_layout(W, H, W * 2 + 4, "mono16", (W * 2 + 4) * H) is SUPPORTED_ENCODINGS["mono16"]
    with pytest.raises(ImageDecodeError, match="expected step\\*height"):
        check_layout(W, H, W * 2, "mono16", W * 2 * H - 1)
    with pytest.raises(ImageDecodeError, match="absurd"):
        check_layout(10_000, 10_000, 10_000, "mono8", 10**8, max_pixels=1000)
    with pytest.raises(ImageDecodeError, match="unsupported"):
        check_layout(W, H, W, "jpeg", W * H)
