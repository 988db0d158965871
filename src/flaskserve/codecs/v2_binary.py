"""The binary tensor data extension of the Open Inference Protocol's REST bodies (Triton's).

A body may be a JSON header followed by raw tensors. The request header
``Inference-Header-Content-Length`` says how many bytes the JSON takes; each
input whose ``parameters`` carry ``binary_data_size`` takes that many bytes of
the rest, in the inputs' order, instead of ``data``. Tensors are little-endian
and row-major with no padding: BOOL is one byte, 0 or 1; FP32 four bytes; a
BYTES element is its length as a 4-byte little-endian unsigned integer, then
that many bytes (UTF-8 text here). A float NaN is a missing cell, as ``null``
is in JSON. This is what ``tritonclient.http`` sends by default.

An output is answered the same way when the request asks for it
(``"binary_data": true`` in the output's parameters, or ``"binary_data_output":
true`` in the request's for every output): the answer is the JSON, whose length
the response header of the same name gives, then the outputs' bytes.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import replace
from typing import Any

import numpy as np

from ..errors import InvalidInput
from .jsonbody import parse_json
from .v2_tensors import Tensor

#: the header that gives the JSON's length, on a request and on a response
HEADER = "Inference-Header-Content-Length"
#: the NumPy dtype of each datatype's elements on the wire
WIRE_DTYPES = {
    "BOOL": "u1",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_LENGTH = struct.Struct("<I")
_MAX_HEADER_DIGITS = 18  # any body length fits; int() is never asked to read a huge number


def split_body(body: bytes, header_length: str | None, max_depth: int) -> tuple[Any, bytes]:
    """The parsed JSON of *body*, and the binary data after it.

    :param header_length: the request's ``Inference-Header-Content-Length``, if it had one;
        without it the whole body is JSON.
    :param max_depth: the JSON nesting limit.
    :raises InvalidInput: the header is not a byte count within the body, or the
        JSON is not valid.
    """
    if header_length is None:
        return parse_json(body, max_depth), b""
    text = header_length.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= _MAX_HEADER_DIGITS):
        raise InvalidInput(f"{HEADER}: expected a number of bytes, got {text[:40]!r}")
    length = int(text)
    if length > len(body):
        raise InvalidInput(f"{HEADER}: {length} is past the end of the {len(body)}-byte body")
    return parse_json(body[:length], max_depth), body[length:]


def read_binary(tensors: list[Tensor], binary: bytes) -> list[Tensor]:
    """*tensors* with the ``data`` of those sent in binary read from *binary*, in order.

    :raises InvalidInput: the sizes do not add up to *binary*'s length, or a
        tensor's bytes do not fit its datatype and shape.
    """
    result: list[Tensor] = []
    offset = 0
    for tensor in tensors:
        if tensor.binary_size is None:
            result.append(tensor)
            continue
        end = offset + tensor.binary_size
        if end > len(binary):
            raise InvalidInput(
                f"{tensor.where}: binary_data_size {tensor.binary_size} is past the end of the"
                f" body: {len(binary) - offset} byte(s) of binary data are left"
            )
        result.append(replace(tensor, data=decode_tensor(tensor, binary[offset:end])))
        offset = end
    if offset != len(binary):
        raise InvalidInput(
            f"the body has {len(binary)} byte(s) of binary data after the JSON header"
            f" ({HEADER}), but the inputs' binary_data_size add up to {offset}"
        )
    return result


def decode_tensor(tensor: Tensor, raw: bytes) -> list[Any]:
    """The flat values of *tensor* from its raw bytes (``None`` for a float NaN).

    :raises InvalidInput: the byte count does not fit the datatype and shape, a
        BOOL byte is not 0 or 1, or a BYTES element is cut short or is not UTF-8.
    """
    if tensor.datatype == "BYTES":
        return _text_elements(raw, tensor.where)
    dtype = np.dtype(WIRE_DTYPES[tensor.datatype])
    needed = math.prod(tensor.shape) * dtype.itemsize
    if len(raw) != needed:
        raise InvalidInput(
            f"{tensor.where}: shape {list(tensor.shape)} of {tensor.datatype} takes {needed}"
            f" bytes ({dtype.itemsize} each), got binary_data_size {len(raw)}"
        )
    values = np.frombuffer(raw, dtype=dtype)
    if tensor.datatype == "BOOL":
        wrong = np.flatnonzero(values > 1)
        if len(wrong):
            raise InvalidInput(
                f"{tensor.where}: element {wrong[0]}: a BOOL byte must be 0 or 1,"
                f" got {values[wrong[0]]}"
            )
        return values.astype(bool).tolist()  # type: ignore[no-any-return]
    if dtype.kind == "f":
        return [None if math.isnan(v) else v for v in values.tolist()]
    return values.tolist()  # type: ignore[no-any-return]


def _text_elements(raw: bytes, where: str) -> list[str]:
    elements: list[str] = []
    offset, end = 0, len(raw)
    while offset < end:
        at = f"{where}: BYTES element {len(elements)} (at byte {offset})"
        if end - offset < _LENGTH.size:
            raise InvalidInput(f"{at}: {end - offset} byte(s) left, too few for its 4-byte length")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if length > end - offset:
            raise InvalidInput(
                f"{at}: its length {length} is past the end of the tensor"
                f" ({end - offset} byte(s) left)"
            )
        try:
            elements.append(raw[offset : offset + length].decode())
        except UnicodeDecodeError:
            raise InvalidInput(f"{at}: not UTF-8 text") from None
        offset += length
    return elements


def encode_tensor(datatype: str, data: list[Any]) -> bytes:
    """The raw bytes of a tensor's flat *data*: :func:`decode_tensor` in reverse."""
    if datatype == "BYTES":
        encoded = [v.encode() if isinstance(v, str) else bytes(v) for v in data]
        return b"".join(_LENGTH.pack(len(v)) + v for v in encoded)
    return np.asarray(data, dtype=WIRE_DTYPES[datatype]).tobytes()


def encode_binary_response(body: dict[str, Any], binary: frozenset[str]) -> tuple[bytes, int]:
    """The response with the outputs named in *binary* as raw bytes after the JSON.

    Each such output loses its ``data`` and gains ``parameters.binary_data_size``.

    :param body: the JSON response (:func:`.v2.encode_infer_response`); it is changed.
    :returns: the whole body, and the JSON's length (for :data:`HEADER`).
    """
    chunks: list[bytes] = []
    for output in body["outputs"]:
        if output["name"] not in binary:
            continue
        raw = encode_tensor(output["datatype"], output.pop("data"))
        output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
        chunks.append(raw)
    header = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    return header + b"".join(chunks), len(header)
