"""EXIF orientation of JPEGs: read it from the bytes and reset it to 1 (lossless: two bytes change).

OpenCV (``cv2.imread``/``imdecode``, i.e. ultralytics' loader and our evaluation) turns a JPEG by its EXIF
orientation tag, while COCO's ``width``/``height`` and boxes describe the pixels as stored. Setting the tag
to 1 ("as stored") makes every loader see the frame the annotations were drawn on; the compressed pixels
are not touched. Only the orientation entry of IFD0 of the first ``Exif`` APP1 segment is read or changed
(the one OpenCV and PIL obey).

Examples:
    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); ex = Image.Exif(); ex[ORIENTATION_TAG] = 6
    >>> Image.new("RGB", (4, 2)).save(buf, "JPEG", exif=ex.tobytes())
    >>> orientation(buf.getvalue()), orientation(reset_orientation(buf.getvalue()))
    (6, 1)
"""

from __future__ import annotations

import struct

ORIENTATION_TAG = 0x0112
SHORT = 3  # TIFF field type of the orientation value
TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height
_NO_LENGTH = {0x01, *range(0xD0, 0xD8)}  # markers without a length field (TEM, RSTn)


def _orientation_offset(data: bytes) -> tuple[int, str] | None:
    """``(offset, byte order)`` of the orientation value in ``data`` (a JPEG), or None when it has none."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _NO_LENGTH:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no metadata after this
            return None
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        seg, end = i + 4, min(i + 2 + length, len(data))
        if marker == 0xE1 and data[seg : seg + 6] == b"Exif\0\0":
            return _ifd0_orientation(data, seg + 6, end)
        i = end
    return None


def _ifd0_orientation(data: bytes, tiff: int, end: int) -> tuple[int, str] | None:
    order = {b"II": "<", b"MM": ">"}.get(data[tiff : tiff + 2])
    if order is None or tiff + 8 > end:
        return None
    magic, ifd = struct.unpack(order + "HI", data[tiff + 2 : tiff + 8])
    if magic != 42 or tiff + ifd + 2 > end:
        return None
    (count,) = struct.unpack(order + "H", data[tiff + ifd : tiff + ifd + 2])
    for k in range(count):
        e = tiff + ifd + 2 + 12 * k
        if e + 12 > end:
            return None
        tag, kind, n = struct.unpack(order + "HHI", data[e : e + 8])
        if tag == ORIENTATION_TAG:
            return (e + 8, order) if kind == SHORT and n == 1 else None
    return None


def orientation(data: bytes) -> int:
    """EXIF orientation (1..8) of a JPEG given as bytes; 1 when it has none (or is not a JPEG)."""
    found = _orientation_offset(data)
    if found is None:
        return 1
    off, order = found
    (value,) = struct.unpack(order + "H", data[off : off + 2])
    return value


def reset_orientation(data: bytes) -> bytes:
    """``data`` with its EXIF orientation set to 1 (unchanged when it has none); pixels and other tags kept."""
    found = _orientation_offset(data)
    if found is None:
        return data
    off, order = found
    return data[:off] + struct.pack(order + "H", 1) + data[off + 2 :]


__all__ = ["ORIENTATION_TAG", "TRANSPOSED", "orientation", "reset_orientation"]
