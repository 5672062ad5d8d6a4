"""Low-level file I/O, each piece once: atomic writes, hashing, sniffing, IDX headers, decoding.

A leaf module: it imports only the standard library, NumPy and Pillow, so
every layer (data, engine, predict, serve, cli) can use it. Its errors are
plain (:class:`IdxFormatError`, :class:`ImageDecodeError`, both ``ValueError``)
and carry a ``reason`` code, so each caller words them for its own users
(the data layer with the file's path and advice, ``predict`` as an
``ImageInputError`` naming the file, the server as an HTTP 4xx).

* Atomic writes (:mod:`.atomic`): :func:`atomic_write` (bytes, text, or a function writing to a
  binary file) and :func:`atomic_path` (a temporary path for writers that need
  one). The temporary file ``.<name>.<random>.tmp[<suffix>]`` is created in the
  destination's folder with mode 0666 less the umask (not ``mkstemp``'s 0600),
  fsynced, renamed over the destination with :func:`os.replace`, and the folder
  is fsynced; on any exception, Ctrl-C included, the temporary file is removed
  and a previous file at the destination is left as it was.
  :data:`TEMP_FILE_PATTERN` matches those names (stale-file clean-up).
  :func:`atomic_write_json` writes a JSON document that way.
* Hashing (:mod:`.hashing`): :func:`file_digest`, a file's SHA-256 (or MD5), in chunks.
* Sniffing (:mod:`.sniff`): :func:`sniff` names what a file is from its first bytes;
  :func:`describe_kind` says it in words.
* IDX (:mod:`.idx`): :func:`is_idx_magic`, :func:`is_byteswapped_idx` (a header written
  little-endian), :func:`parse_idx_header` (magic, element type,
  number of dimensions, sizes, and the length they imply, all checked before
  anything is allocated) and :func:`idx_array`.
* Images (:mod:`.images`): :data:`IMAGE_FORMATS`, the one allow-list of Pillow decoders that
  user bytes may reach; :func:`open_image` (header only), :func:`load_image`
  (pixels), :func:`decode_image` (both), :func:`upright` (EXIF orientation).
* Pictures for people (:mod:`.pictures`): :func:`decode_picture` (decoding
  with every failure an :class:`ImageInputError` that says why in words, and
  the sizes no digit picture has refused: :func:`check_size`),
  :func:`not_an_image`, :func:`idx_images`, :func:`tiff_pages`.
"""

from mnistcnn._io.atomic import (
    TEMP_FILE_PATTERN,
    Content,
    PathLike,
    atomic_path,
    atomic_write,
    atomic_write_json,
    fsync_dir,
    is_temp_file_name,
    new_temp_file,
)
from mnistcnn._io.hashing import file_digest
from mnistcnn._io.idx import (
    IDX_MAX_DIMS,
    IDX_TYPES,
    IdxFormatError,
    IdxHeader,
    idx_array,
    is_byteswapped_idx,
    is_idx_magic,
    parse_idx_header,
)
from mnistcnn._io.images import (
    IMAGE_FORMATS,
    KIND_FORMATS,
    ImageDecodeError,
    accepted_formats,
    bomb_limit,
    decode_image,
    header_size,
    load_image,
    open_image,
    upright,
)
from mnistcnn._io.pictures import (
    HEIC_ADVICE,
    MAX_ASPECT,
    MIN_SIDE,
    ImageInputError,
    check_size,
    decode_picture,
    idx_images,
    not_an_image,
    tiff_pages,
)
from mnistcnn._io.sniff import KIND_WORDS, SNIFF_BYTES, describe_kind, sniff, sniff_file

__all__ = [
    "HEIC_ADVICE",
    "MAX_ASPECT",
    "MIN_SIDE",
    "ImageInputError",
    "check_size",
    "decode_picture",
    "idx_images",
    "not_an_image",
    "tiff_pages",
    "IDX_MAX_DIMS",
    "IDX_TYPES",
    "IMAGE_FORMATS",
    "KIND_FORMATS",
    "KIND_WORDS",
    "SNIFF_BYTES",
    "TEMP_FILE_PATTERN",
    "Content",
    "IdxFormatError",
    "IdxHeader",
    "ImageDecodeError",
    "bomb_limit",
    "header_size",
    "PathLike",
    "accepted_formats",
    "atomic_path",
    "atomic_write",
    "atomic_write_json",
    "decode_image",
    "describe_kind",
    "file_digest",
    "fsync_dir",
    "idx_array",
    "is_byteswapped_idx",
    "is_idx_magic",
    "is_temp_file_name",
    "load_image",
    "new_temp_file",
    "open_image",
    "parse_idx_header",
    "sniff",
    "sniff_file",
    "upright",
]
