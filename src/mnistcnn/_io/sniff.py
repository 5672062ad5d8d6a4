"""File sniffing: :func:`sniff` names what a file is from its first bytes;
:func:`describe_kind` says it in words."""

from __future__ import annotations

from mnistcnn._io.atomic import PathLike
from mnistcnn._io.idx import is_idx_magic

#: How many leading bytes :func:`sniff_file` reads (enough for every rule of :func:`sniff`).
SNIFF_BYTES = 4096

#: (leading bytes, kind), checked in order.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"%PDF", "pdf"),
    (b"%!PS", "postscript"),
    (b"\xc5\xd0\xd3\xc6", "postscript"),  # DOS EPS binary header
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"\x1f\x8b", "gzip"),
    (b"\x08\x01\x12", "protobuf"),  # ir_version field of an ONNX ModelProto
    (b"PK\x03\x04", "zip"),
    (b"\0\0\x01\0", "ico"),
)
#: ISO base media ``ftyp`` brands (bytes 8..12) of still images.
_AVIF_BRANDS = frozenset((b"avif", b"avis"))
_HEIC_BRANDS = frozenset((b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"))
_HTML_STARTS = ("<!doctype html", "<html", "<head", "<body", "<script")

#: Words for each kind :func:`sniff` returns (an article first, for "found ...").
KIND_WORDS: dict[str, str] = {
    "empty": "an empty file (0 bytes)",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "gif": "a GIF image",
    "tiff": "a TIFF image",
    "webp": "a WebP image",
    "bmp": "a BMP image",
    "ico": "an ICO icon",
    "pnm": "a PNM (PBM/PGM/PPM) image",
    "avif": "an AVIF image",
    "heic": "a HEIC/HEIF image",
    "isobmff": "an MP4/QuickTime (ISO media) file",
    "pdf": "a PDF document",
    "postscript": "a PostScript/EPS file",
    "hdf5": "an HDF5 file",
    "gzip": "a gzip file",
    "protobuf": "a protobuf file",
    "zip": "a zip archive",
    "pickle": "a Python pickle",
    "idx": "an IDX file",
    "json": "JSON text",
    "svg": "an SVG (vector) image",
    "html": "an HTML page",
    "xml": "XML or HTML text",
    "text": "a text file",
    "binary": "binary data",
}


def sniff(head: bytes) -> str:
    """Name what a file is from its first bytes (pass at least :data:`SNIFF_BYTES` if there are).

    Returns one key of :data:`KIND_WORDS`: ``"empty"``; an image (``"png"``,
    ``"jpeg"``, ``"gif"``, ``"tiff"``, ``"webp"``, ``"bmp"``, ``"ico"``, ``"pnm"``,
    ``"avif"``, ``"heic"``; ``"isobmff"`` for other ``ftyp`` files); a document
    or container (``"pdf"``, ``"postscript"``, ``"hdf5"``, ``"gzip"``,
    ``"protobuf"``, ``"zip"`` (a torch checkpoint), ``"pickle"`` (protocol 2+));
    ``"idx"`` (:func:`is_idx_magic`); text (``"json"``, ``"svg"``, ``"html"``,
    ``"xml"``, ``"text"``); else ``"binary"``.

    An HTML page is recognised by its start or by ``<html`` in its first
    1024 bytes, even when it is not valid UTF-8 (a proxy's error page saved
    under a data file's name). Never raises.
    """
    if not head:
        return "empty"
    for magic, kind in _SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[0] == 0x80:  # PROTO opcode: a pickle of protocol 2+ (torch's legacy format)
        return "pickle"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and head[6:10] == b"\0\0\0\0":  # the reserved bytes of a BMP header
        return "bmp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "avif" if brand in _AVIF_BRANDS else "heic" if brand in _HEIC_BRANDS else "isobmff"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2] in b" \t\r\n":
        return "pnm"
    if is_idx_magic(head):
        return "idx"
    text = _text_start(head)
    if text is not None:
        start = text.lstrip("\ufeff \t\r\n")[:16].lower()
        if start.startswith(("{", "[")):
            return "json"
        if start.startswith("<svg") or (start.startswith("<?xml") and "<svg" in text.lower()):
            return "svg"
        if start.startswith(_HTML_STARTS):
            return "html"
    if b"<html" in head[:1024].lower():
        return "html"
    if text is None:
        return "binary"
    return "xml" if text.lstrip("\ufeff \t\r\n").startswith("<") else "text"


def _text_start(head: bytes) -> str | None:
    """``head`` decoded as UTF-8, or None for binary (a NUL byte, invalid UTF-8)."""
    if b"\0" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return None
        return head[: exc.start].decode("utf-8")


def sniff_file(path: PathLike) -> tuple[str, bytes]:
    """(:func:`sniff` of the file's first :data:`SNIFF_BYTES` bytes, those bytes).

    Raises:
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    return sniff(head), head


def describe_kind(kind: str) -> str:
    """Words for a :func:`sniff` result, for messages: ``"a PNG image"``, ``"JSON text"``, ...

    Raises:
        KeyError: ``kind`` is not a key of :data:`KIND_WORDS`.
    """
    return KIND_WORDS[kind]
