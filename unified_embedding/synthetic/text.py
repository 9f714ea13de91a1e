"""Criteo-format text of generated rows, written into fixed-width byte matrices (no per-row
Python): labels, decimal counts by table lookup, category ids as 8 hex characters."""

from __future__ import annotations

import numpy as np

# Byte -> its two hex characters, as one uint16 whose memory order is the text order.
_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint16)
_PAD = 0  # filler byte of the fixed-width line matrix, deleted before writing
_TAB, _NEWLINE, _ZERO = (ord(c) for c in "\t\n0")


def _text_table(values: range, template: str) -> np.ndarray:
    """(len(values),) uint32 whose 4 bytes are each value's text, spaces turned into _PAD."""
    text = "".join(template.format(v) for v in values).replace(" ", chr(_PAD))
    return np.frombuffer(text.encode("ascii"), dtype=np.uint32)


# Integers print by table lookup, 4 digits at a time: "%4d" of -999..9999 and "%04d" of 0..9999.
_SMALL_MIN, _SMALL_END, _LOW_BASE = -999, 10_000, 10_000
_SMALL_TEXT = _text_table(range(_SMALL_MIN, _SMALL_END), "{:>4}")
_LOW_TEXT = _text_table(range(_LOW_BASE), "{:04}")
_MAX_PRINTABLE = _LOW_BASE * _SMALL_END - 1  # two lookups: up to 8 digits


def format_lines(labels: np.ndarray, integers: np.ndarray, categories: np.ndarray) -> bytes:
    """Criteo lines for (n,) labels, (n, 13) integers and (n, 26) ids.

    Fields are written into a fixed-width (n, width) byte matrix with _PAD where a short or
    missing value leaves room; dropping the _PAD bytes in row-major order yields the lines.
    """
    n = labels.shape[0]
    missing = np.isnan(integers)
    values = np.where(missing, 0.0, integers).astype(np.int64)
    if values.size and (values.min() < _SMALL_MIN or values.max() > _MAX_PRINTABLE):
        raise ValueError(f"Integer values must lie in [{_SMALL_MIN}, {_MAX_PRINTABLE}].")
    widths = [4 if column.max(initial=0) < _SMALL_END else 8 for column in values.T]
    hex_start = 1 + sum(1 + w for w in widths)
    line = np.empty((n, hex_start + 9 * categories.shape[1] + 1), dtype=np.uint8)
    line[:, 0] = labels.astype(np.uint8) + _ZERO
    start = 1
    for j, width in enumerate(widths):
        line[:, start] = _TAB
        text = _integer_text(values[:, j], width)
        text[missing[:, j]] = _PAD
        line[:, start + 1 : start + 1 + width] = text
        start += 1 + width
    hex_fields = line[:, hex_start:-1].reshape(n, categories.shape[1], 9)  # a view
    hex_fields[:, :, 0] = _TAB
    hex_fields[:, :, 1:] = _format_categories(categories)
    line[:, -1] = _NEWLINE
    return line[line != _PAD].tobytes()


def _integer_text(values: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 right-aligned decimal text of (n,) int64; width 4 or 8 (see callers)."""
    small = _SMALL_TEXT[np.minimum(values, _SMALL_END - 1) - _SMALL_MIN]  # exact if < 10^4
    if width == 4:
        return small.view(np.uint8).reshape(-1, 4)
    high, low = np.divmod(np.maximum(values, 0), _LOW_BASE)
    large = values >= _SMALL_END
    text = np.empty((values.shape[0], 2), dtype=np.uint32)
    text[:, 0] = np.where(large, _SMALL_TEXT[high - _SMALL_MIN], _PAD)
    text[:, 1] = np.where(large, _LOW_TEXT[low], small)
    return text.view(np.uint8)


def _format_categories(categories: np.ndarray) -> np.ndarray:
    """(n, c, 8) uint8 lowercase hex of a per-field bijective mix of each id; missing -> _PAD."""
    missing = categories < 0
    salts = _mix32(np.arange(1, categories.shape[1] + 1, dtype=np.uint32) * np.uint32(0x9E3779B9))
    mixed = _mix32(np.where(missing, 0, categories).astype(np.uint32) ^ salts)
    big_endian = mixed.astype(">u4").view(np.uint8)  # (n, c * 4)
    out = _HEX_PAIRS[big_endian].view(np.uint8).reshape(*categories.shape, 8)
    out[missing] = _PAD
    return out


def category_ids(cells: np.ndarray) -> np.ndarray:
    """(n, 26) int64 value ids of the C cells of written lines, -1 where empty: the inverse of
    the text. `cells` holds the 8-hex-digit strings (str or bytes); any cell that is not 8
    characters long (e.g. "" or a reader's "nan") is missing."""
    text = np.asarray(cells).astype("S8")  # too-long cells fail the length check below
    lengths = np.char.str_len(np.asarray(cells).astype(str))
    missing = lengths != 8
    digits = _HEX_VALUES[text.view(np.uint8).reshape(*text.shape, 8)]  # (n, c, 8)
    if np.any(digits[~missing] > 15):
        raise ValueError("category cells should be 8 lowercase hex digits.")
    mixed = np.zeros(text.shape, dtype=np.uint32)
    for position in range(8):
        mixed = (mixed << np.uint32(4)) | digits[..., position].astype(np.uint32)
    salts = _mix32(np.arange(1, text.shape[1] + 1, dtype=np.uint32) * np.uint32(0x9E3779B9))
    ids = (_unmix32(mixed) ^ salts).astype(np.int64)
    return np.where(missing, -1, ids)


_HEX_VALUES = np.full(256, 255, dtype=np.uint8)  # byte -> its hex digit's value, else 255
_HEX_VALUES[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)


def _unmix32(x: np.ndarray) -> np.ndarray:
    """The inverse of `_mix32`: xor-shifts undone, multiplications by the inverses mod 2^32."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(pow(0xC2B2AE35, -1, 2**32))
    x = x ^ (x >> np.uint32(13)) ^ (x >> np.uint32(26))
    x = x * np.uint32(pow(0x85EBCA6B, -1, 2**32))
    return x ^ (x >> np.uint32(16))


def _mix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's fmix32 finalizer: a bijection on uint32 that scrambles sequential ids."""
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))
