"""Raw image buffers (ROS ``sensor_msgs/Image`` fields) to numpy arrays and back, without ROS.

The node receives ``data``/``width``/``height``/``step``/``encoding``/``is_bigendian`` and must turn them into
an array at camera rate, so decoding returns a *view* of the message buffer whenever the bytes allow it
(native byte order); only big-endian multi-byte data is copied. Every malformed message is rejected here, with
the encoding and the numbers in the error, so that nothing downstream sees a half-valid array.
"""

from __future__ import annotations

import array
from dataclasses import dataclass

import cv2
import numpy as np

from ivfusion.errors import ImageDecodeError


@dataclass(frozen=True)
class EncodingInfo:
    """What one pixel of an encoding is: element type and channel count (channel order is the name's)."""

    dtype: np.dtype
    channels: int

    @property
    def bytes_per_pixel(self) -> int:
        return self.dtype.itemsize * self.channels


_U8, _U16, _F32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)

#: Encodings this package accepts, by their ROS names.
SUPPORTED_ENCODINGS: dict[str, EncodingInfo] = {
    "mono8": EncodingInfo(_U8, 1),
    "8UC1": EncodingInfo(_U8, 1),
    "mono16": EncodingInfo(_U16, 1),
    "16UC1": EncodingInfo(_U16, 1),
    "32FC1": EncodingInfo(_F32, 1),  # float thermal, e.g. radiometric Kelvin
    "8UC3": EncodingInfo(_U8, 3),  # channel order unknown; treated as BGR, OpenCV's default
    "rgb8": EncodingInfo(_U8, 3),
    "bgr8": EncodingInfo(_U8, 3),
    "rgba8": EncodingInfo(_U8, 4),
    "bgra8": EncodingInfo(_U8, 4),
}

# cv2 conversion codes for the 8-bit encodings; None means "already in that form".
_TO_BGR = {
    "mono8": cv2.COLOR_GRAY2BGR, "8UC1": cv2.COLOR_GRAY2BGR, "rgb8": cv2.COLOR_RGB2BGR,
    "bgr8": None, "8UC3": None, "rgba8": cv2.COLOR_RGBA2BGR, "bgra8": cv2.COLOR_BGRA2BGR,
}
_TO_MONO = {
    "mono8": None, "8UC1": None, "rgb8": cv2.COLOR_RGB2GRAY, "bgr8": cv2.COLOR_BGR2GRAY,
    "8UC3": cv2.COLOR_BGR2GRAY, "rgba8": cv2.COLOR_RGBA2GRAY, "bgra8": cv2.COLOR_BGRA2GRAY,
}

ImageBuffer = bytes | bytearray | memoryview | array.array | np.ndarray


def encoding_info(encoding: str) -> EncodingInfo:
    """Look up an encoding; the error lists the accepted names because a typo is the usual cause."""
    try:
        return SUPPORTED_ENCODINGS[encoding]
    except (KeyError, TypeError):
        raise ImageDecodeError(
            f"unsupported image encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}"
        ) from None


def bytes_per_pixel(encoding: str) -> int:
    return encoding_info(encoding).bytes_per_pixel


def _as_byte_array(data: ImageBuffer, encoding: str) -> np.ndarray:
    """A flat uint8 view of the buffer (bytes are read-only, so is the view; that is intended)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ImageDecodeError(f"{encoding} image data array must be uint8, got {data.dtype}")
        return data.reshape(-1)  # a view when contiguous, which message buffers are
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError(f"{encoding} image data of type {type(data).__name__} is not a byte buffer") from exc


def check_layout(width: int, height: int, step: int, encoding: str, data_length: int,
                 max_pixels: int = 50_000_000) -> EncodingInfo:
    """Validate an image's header fields against its buffer length without touching the pixels.

    Cheap enough for a subscription callback, so a malformed frame is rejected before it is paired and
    cannot take a good frame of the other camera down with it.
    """
    info = encoding_info(encoding)
    width, height, step = int(width), int(height), int(step)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{encoding} image has zero size: width={width}, height={height}")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"{encoding} image has absurd size {width}x{height} = {width * height} pixels (max {max_pixels})"
        )
    row_bytes = width * info.bytes_per_pixel
    if step < row_bytes:
        raise ImageDecodeError(
            f"{encoding} image step {step} is smaller than width*bytes_per_pixel = {width}*{info.bytes_per_pixel}"
            f" = {row_bytes}"
        )
    if data_length != step * height:
        raise ImageDecodeError(
            f"{encoding} image data length mismatch: expected step*height = {step}*{height} = {step * height}"
            f" bytes, got {data_length}"
        )
    return info


def decode_image(
    data: ImageBuffer,
    width: int,
    height: int,
    step: int,
    encoding: str,
    is_bigendian: bool = False,
    *,
    max_pixels: int = 50_000_000,
) -> np.ndarray:
    """Interpret a raw buffer as (H, W) or (H, W, C) in the message's own channel order.

    Row padding (``step`` larger than a row) is skipped with strides rather than copied out. Big-endian
    16-bit and float data are byte-swapped to native order (a copy, the only one). 32FC1 must be finite:
    a NaN in a thermal frame would poison every percentile and pyramid level after it.
    """
    width, height, step = int(width), int(height), int(step)
    buf = _as_byte_array(data, encoding) if encoding in SUPPORTED_ENCODINGS else None
    info = check_layout(width, height, step, encoding, 0 if buf is None else buf.size, max_pixels)
    assert buf is not None
    multibyte = info.dtype.itemsize > 1
    dtype = info.dtype.newbyteorder(">" if is_bigendian else "<") if multibyte else info.dtype
    shape: tuple[int, ...] = (height, width) if info.channels == 1 else (height, width, info.channels)
    strides: tuple[int, ...] = (step, info.bytes_per_pixel) + ((info.dtype.itemsize,) if info.channels > 1 else ())
    img = np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)
    if not dtype.isnative:
        img = img.astype(info.dtype)  # swap to native: numpy and cv2 kernels expect it
    if info.dtype == _F32 and not np.isfinite(img).all():
        bad = int(np.count_nonzero(~np.isfinite(img)))
        raise ImageDecodeError(f"{encoding} image contains {bad} NaN/inf values out of {width * height}")
    return img


def _check_array(img: np.ndarray, encoding: str, info: EncodingInfo) -> None:
    expected_shape_ok = img.ndim == 2 if info.channels == 1 else (img.ndim == 3 and img.shape[2] == info.channels)
    if img.dtype.newbyteorder("=") != info.dtype or not expected_shape_ok:
        want = f"(H,W{'' if info.channels == 1 else f',{info.channels}'}) {info.dtype}"
        raise ImageDecodeError(f"array {img.shape} {img.dtype} does not match encoding {encoding}: expected {want}")


def _convert8(img: np.ndarray, encoding: str, table: dict[str, int | None], target: str) -> np.ndarray:
    info = encoding_info(encoding)
    if encoding not in table:
        raise ImageDecodeError(f"{target} cannot convert {encoding} ({info.dtype}); apply ThermalAGC first")
    _check_array(img, encoding, info)
    code = table[encoding]
    return img if code is None else cv2.cvtColor(img, code)


def to_bgr8(img: np.ndarray, encoding: str) -> np.ndarray:
    """8-bit BGR for the detector and fusion; bgr8/8UC3 come back as the same array (no copy).

    16-bit and float frames are refused: mapping them to 8 bits is a gain decision (see ``ThermalAGC``), not a
    format conversion, and silently truncating would give black frames.
    """
    return _convert8(img, encoding, _TO_BGR, "to_bgr8")


def to_mono8(img: np.ndarray, encoding: str) -> np.ndarray:
    """8-bit grey (cv2's BT.601 weights for colour); mono8/8UC1 come back as the same array."""
    return _convert8(img, encoding, _TO_MONO, "to_mono8")


def encode_image(img: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """Pack an array as message bytes with no row padding; returns ``(data, step)``.

    Multi-byte data is written in native order, so the message's ``is_bigendian`` is
    ``sys.byteorder == "big"``.
    """
    info = encoding_info(encoding)
    _check_array(img, encoding, info)
    native = img if img.dtype.isnative else img.astype(info.dtype)
    return np.ascontiguousarray(native).tobytes(), img.shape[1] * info.bytes_per_pixel
