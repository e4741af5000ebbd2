"""Images attached to a prompt (``%%chat --image X``): whatever the user points at becomes an OpenAI
``image_url`` content part. Pure: no IPython, no network.

Everything is checked before anything is sent: a non-image, a missing file or an image too large for the
relay fails here with a message naming it, rather than as an opaque HTTP 400 after a long upload. Pillow
and matplotlib are optional and imported only when they are needed (a PIL image or a figure can only
exist if its library is already loaded, so recognising one never imports anything).
"""

from __future__ import annotations

import base64
import binascii
import errno
import importlib
import io
import os
import re
import stat
import struct
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, Optional
from urllib.parse import urlsplit

from ._errors import ConfigError

__all__ = ["ImagePart", "image_part", "sniff_mime"]

THUMBNAIL_SIDE = 160
# Without Pillow the thumbnail is the image itself, so only when that is cheap to keep in the notebook.
_RAW_THUMBNAIL_BYTES = 64 * 1024
# Past this, even Pillow should not be asked to decode the file: it is not a photo, or not a sane one.
_HARD_LIMIT = 256 * 1024 * 1024
_ACCEPTED = (
    "a file path, an http(s):// URL, a data:image/...;base64 URL, bytes, a PIL image, a matplotlib figure, "
    "or the name of a variable holding one of these"
)
_FORMATS = "PNG, JPEG, GIF, WebP or BMP"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*),(.*)$", re.DOTALL | re.IGNORECASE)


class ImagePart(NamedTuple):
    """One image, ready to go into a user message's content list.

    Attributes:
        part: ``{"type": "image_url", "image_url": {"url": ...}}`` (a ``data:`` URL, or the http(s) URL).
        mime: the image's MIME type (``"image/png"``...), "" when unknown (remote URLs are not fetched).
        size: the number of image bytes sent (0 for remote URLs).
        label: a short human description, e.g. ``"photo.jpg (231 KB, image/jpeg)"``.
        thumbnail: a small ``data:`` URL to show in the notebook, or None.
    """

    part: dict[str, Any]
    mime: str
    size: int
    label: str
    thumbnail: Optional[str]


def sniff_mime(data: bytes) -> Optional[str]:
    """The image MIME type from the bytes' magic numbers (PNG, JPEG, GIF, WebP, BMP), or None."""
    head = bytes(data[:32])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    # "BM" alone matches plenty of text ("BMW..."): also require a known DIB header size.
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _DIB_SIZES:
        return "image/bmp"
    return None


_DIB_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})


def _describe(data: bytes) -> str:
    """What some bytes that are not an accepted image look like, for the error message."""
    head = bytes(data[:512])
    if not head:
        return "it is empty"
    lower = head.lstrip().lower()
    known = [
        (head.startswith(b"%PDF"), "a PDF document"),
        (
            head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1"),
            "a HEIC image",
        ),
        (head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"), "an AVIF image"),
        (head[4:8] == b"ftyp", "an MP4/QuickTime video"),
        (head[:4] in (b"II*\x00", b"MM\x00*"), "a TIFF image"),
        (head[:4] == b"\x00\x00\x01\x00", "an ICO icon"),
        (head.startswith(b"PK\x03\x04"), "a ZIP archive (or an Office document)"),
        (head.startswith(b"\x1f\x8b"), "a gzip archive"),
        (b"<svg" in lower, "an SVG drawing"),
        (lower.startswith((b"<!doctype html", b"<html")), "an HTML page"),
        (lower.startswith(b"<?xml"), "an XML document"),
    ]
    for matched, what in known:
        if matched:
            return f"it looks like {what}"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        if exc.start < len(head) - 4:
            return f"it starts with bytes {head[:8].hex(' ')}"
    return "it looks like text"


def _hint_for(description: str) -> str:
    if "image" in description or "SVG" in description:
        return f"convert it to PNG or JPEG first (accepted: {_FORMATS})"
    return f"give an image file ({_FORMATS})"


def _dimensions(data: bytes) -> Optional[tuple[int, int]]:
    """(width, height) read from the header alone, without Pillow; None if it cannot be told."""
    try:
        mime = sniff_mime(data)
        if mime == "image/png" and data[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", data, 16)
            return w, h
        if mime == "image/gif":
            w, h = struct.unpack_from("<HH", data, 6)
            return w, h
        if mime == "image/bmp":
            if struct.unpack_from("<I", data, 14)[0] == 12:
                w, h = struct.unpack_from("<HH", data, 18)
                return w, h
            w, h = struct.unpack_from("<ii", data, 18)
            return abs(w), abs(h)  # a negative height means top-down rows
        if mime == "image/webp":
            return _webp_dimensions(data)
        if mime == "image/jpeg":
            return _jpeg_dimensions(data)
    except struct.error:
        pass
    return None


def _webp_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = struct.unpack_from("<I", data, 21)[0]
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


def _jpeg_dimensions(data: bytes) -> Optional[tuple[int, int]]:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xDA)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack_from(">H", data, i + 2)
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack_from(">HH", data, i + 5)
            return w, h
        i += 2 + length
    return None


def _human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.0f} KB"
    mb = n / (1024 * 1024)
    return f"{mb:.0f} MB" if mb == int(mb) else f"{mb:.1f} MB"


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _pil() -> Any:
    """``PIL.Image`` if Pillow is installed, else None (imported on demand: most cells never need it)."""
    try:
        return importlib.import_module("PIL.Image")
    except ImportError:
        return None


def _loaded_class(module: str, name: str) -> Any:
    """A class from a module only if that module is already imported: an object of the class cannot exist
    otherwise, and importing matplotlib just to say "no, not a figure" would cost a second."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


# -- Pillow helpers ---------------------------------------------------------------------------------------


def _has_alpha(img: Any) -> bool:
    """Whether any pixel is see-through: screenshots often carry an alpha channel that is opaque everywhere,
    and those are better sent as JPEG when they are large."""
    if img.mode == "P":
        return "transparency" in img.info
    if img.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        return False
    try:
        return bool(img.getchannel("A").getextrema()[0] < 255)
    except Exception:  # an odd mode without a readable band: assume the transparency matters
        return True


def _normalise_mode(img: Any) -> Any:
    """A mode PNG and JPEG encoders accept (CMYK, 16-bit, float... do not all go everywhere)."""
    if img.mode in ("1", "L", "RGB", "RGBA"):
        return img
    if img.mode.startswith("I"):
        # 16-bit greyscale (scans, microscopy): scale to 8 bits rather than clip everything to white.
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if img.mode == "F":
        return img.convert("L")
    return img.convert("RGBA" if _has_alpha(img) else "RGB")


def _encode(img: Any, *, prefer_jpeg: bool) -> tuple[bytes, str]:
    """PNG for anything with transparency or that is not a photo; JPEG for photos."""
    img = _normalise_mode(img)
    buf = io.BytesIO()
    if prefer_jpeg and not _has_alpha(img):
        img.convert("RGB" if img.mode != "L" else "L").save(buf, format="JPEG", quality=85)
        return buf.getvalue(), "image/jpeg"
    img.save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def _open(image_mod: Any, data: bytes) -> tuple[Any, str]:
    """(the decoded image, "") or (None, why Pillow could not decode it)."""
    try:
        img = image_mod.open(io.BytesIO(data))
        img.load()
    except Exception as exc:  # Pillow raises a zoo of types for broken files, bombs included
        return None, f"{type(exc).__name__}: {exc}"
    return img, ""


def _upright(img: Any) -> Any:
    """Apply the EXIF orientation: re-encoding drops EXIF, and phone photos would come out sideways."""
    try:
        ops = importlib.import_module("PIL.ImageOps")
        return ops.exif_transpose(img)
    except Exception:  # a broken EXIF block must not stop the image from being sent
        return img


def _fit(
    image_mod: Any, img: Any, *, max_bytes: int, max_side: int, prefer_jpeg: bool, what: str
) -> tuple[bytes, str, Any]:
    """Encode ``img`` within both limits, shrinking it (aspect kept) until it fits; also returns the image
    that was encoded (``img`` itself if it did not shrink)."""
    w, h = img.size
    side = max(w, h)
    if max_side > 0:
        side = min(side, max_side)
    while True:
        scaled = img
        if side < max(w, h):
            ratio = side / max(w, h)
            # reducing_gap: a cheap box reduction first, then Lanczos; several times faster on photos
            # and indistinguishable at the sizes models look at.
            scaled = img.resize(
                (max(1, round(w * ratio)), max(1, round(h * ratio))),
                image_mod.Resampling.LANCZOS,
                reducing_gap=3.0,
            )
        data, mime = _encode(scaled, prefer_jpeg=prefer_jpeg)
        if max_bytes <= 0 or len(data) <= max_bytes:
            return data, mime, scaled
        if not prefer_jpeg and not _has_alpha(scaled):
            # A photo saved as PNG is several times larger than the same photo as JPEG: try that first.
            prefer_jpeg = True
            continue
        side = int(side * 0.75)
        if side < 16:
            raise ConfigError(
                f"{what} cannot be made smaller than {_human_size(max_bytes)}",
                "send a smaller image",
            )


def _pil_thumbnail(img: Any) -> Optional[str]:
    try:
        small = _normalise_mode(img.copy())
        small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        data, mime = _encode(small, prefer_jpeg=not _has_alpha(small))
        return _data_url(mime, data)
    except Exception:  # a thumbnail is decoration: never let it stop the image itself
        return None


# -- the sources ------------------------------------------------------------------------------------------


def _from_bytes(
    data: bytes,
    what: str,
    *,
    max_bytes: int,
    max_side: int,
    declared: Optional[str] = None,
) -> ImagePart:
    mime = sniff_mime(data)
    readable = mime is not None
    if mime is None:
        description = _describe(data)
        # A declared image type this module cannot read (HEIC, AVIF...) may still be fine for the server;
        # bytes that are plainly something else are not.
        if declared is None or not any(word in description for word in ("image", "SVG", "bytes")):
            said = f"says {declared} but" if declared else f"is not a {_FORMATS} image:"
            raise ConfigError(f"{what} {said} {description}", _hint_for(description))
        mime = declared
    dims = _dimensions(data) if readable else None
    too_big = max_bytes > 0 and len(data) > max_bytes
    too_wide = max_side > 0 and dims is not None and max(dims) > max_side
    image_mod = _pil() if readable else None
    if image_mod is None:
        fix = (
            "install Pillow (pip install pillow) to downscale automatically, or resize it"
            if readable
            else "resize it, or convert it to JPEG"
        )
        if too_big:
            raise ConfigError(
                f"{what} is {_human_size(len(data))}, over the {_human_size(max_bytes)} limit", fix
            )
        if too_wide and dims is not None:
            raise ConfigError(f"{what} is {dims[0]}×{dims[1]}, over the {max_side} px limit", fix)
        small = readable and len(data) <= _RAW_THUMBNAIL_BYTES
        return _part(data, mime, what, _data_url(mime, data) if small else None)
    img, failure = _open(image_mod, data)
    if img is None:
        if too_big or too_wide:
            raise ConfigError(
                f"{what} is over the size limit, and cannot be decoded to downscale it: {failure}",
                "check that the file is not damaged, or resize it yourself",
            )
        # Magic numbers say image; this Pillow may just lack the codec. The server has the last word,
        # exactly as without Pillow.
        return _part(data, mime, what, None)
    upright = _upright(img)
    w, h = upright.size
    if too_big or (max_side > 0 and max(w, h) > max_side):
        new, new_mime, scaled = _fit(
            image_mod,
            upright,
            max_bytes=max_bytes,
            max_side=max_side,
            prefer_jpeg=mime == "image/jpeg",
            what=what,
        )
        return _part(new, new_mime, what, _pil_thumbnail(scaled), note=f"downscaled from {w}×{h}")
    return _part(data, mime, what, _pil_thumbnail(upright))


def _part(data: bytes, mime: str, what: str, thumbnail: Optional[str], *, note: str = "") -> ImagePart:
    extra = f", {note}" if note else ""
    return ImagePart(
        {"type": "image_url", "image_url": {"url": _data_url(mime, data)}},
        mime,
        len(data),
        f"{what} ({_human_size(len(data))}, {mime}{extra})",
        thumbnail,
    )


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _from_path(path: Path, shown: str, *, max_bytes: int, max_side: int) -> ImagePart:
    """Read an image file: only a regular file (after following links), its size checked with ``fstat``
    before reading, and never more than the limit read (a device such as /dev/zero, a FIFO or a file that
    grows while it is read cannot hang or fill memory)."""
    try:
        path = path.expanduser()
        try:
            target = path.resolve(strict=True)
        except FileNotFoundError:
            raise ConfigError(
                f"no such image file: {shown}",
                f"check the path (relative paths start from the working directory, {os.getcwd()})",
            ) from None
        except (RuntimeError, OSError) as exc:  # RuntimeError: a symlink loop before Python 3.13
            if isinstance(exc, OSError) and exc.errno != errno.ELOOP:
                raise
            raise ConfigError(
                f"{shown} is a loop of symbolic links", "give the path of one image file"
            ) from None
        linked = f" (a link to {target})" if path.is_symlink() else ""
        before = target.stat()
        if not stat.S_ISREG(before.st_mode):
            what = _kind(before.st_mode)
            hint = "give the path of one image file" if what == "a directory" else "give a regular image file"
            raise ConfigError(f"{shown}{linked} is {what}, not an image file", hint)
        # O_NONBLOCK: if a FIFO is swapped in between the check and the open, the open does not wait for a
        # writer; fstat below then refuses it.
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb", buffering=0) as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(
                    f"{shown}{linked} is {_kind(info.st_mode)}, not an image file",
                    "give a regular image file",
                )
            size = info.st_size
            name = path.name
            if size > _HARD_LIMIT or (max_bytes > 0 and size > max_bytes and _pil() is None):
                # Do not read hundreds of megabytes only to refuse them: the header tells what it is.
                head = _read_at_most(fh, 512)
                if sniff_mime(head) is None:
                    description = _describe(head)
                    raise ConfigError(
                        f"{name} is not a {_FORMATS} image: {description}", _hint_for(description)
                    )
                if size > _HARD_LIMIT:
                    hard = _human_size(_HARD_LIMIT)
                    raise ConfigError(
                        f"{name} is {_human_size(size)}, too large to process (over {hard})",
                        "resize it before sending",
                    )
                raise ConfigError(
                    f"{name} is {_human_size(size)}, over the {_human_size(max_bytes)} limit",
                    "install Pillow (pip install pillow) to downscale automatically, or resize it",
                )
            data = _read_at_most(fh, _HARD_LIMIT + 1)
            if len(data) > _HARD_LIMIT:
                raise ConfigError(
                    f"{name} grew past {_human_size(_HARD_LIMIT)} while it was read",
                    "send a file that is not being written",
                )
    except OSError as exc:
        raise ConfigError(
            f"cannot read {shown}: {exc.strerror or exc}", "check the path and its permissions"
        ) from exc
    return _from_bytes(data, name, max_bytes=max_bytes, max_side=max_side)


def _read_at_most(fh: Any, limit: int) -> bytes:
    """Up to ``limit`` bytes (fewer only at the end of the file)."""
    parts: list[bytes] = []
    left = limit
    while left > 0:
        piece = fh.read(min(left, 1024 * 1024))
        if not piece:
            break
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def _from_data_url(url: str, *, max_bytes: int, max_side: int) -> ImagePart:
    found = _DATA_URL.match(url)
    if not found:
        raise ConfigError(f"malformed data: URL: {_shorten(url)}", "expected data:image/png;base64,...")
    mime = found.group(1).strip().lower()
    params = [p.strip().lower() for p in found.group(2).split(";") if p.strip()]
    if not mime.startswith("image/"):
        raise ConfigError(
            f"the data: URL holds {mime or 'text/plain'}, not an image",
            f"give a data:image/...;base64 URL ({_FORMATS})",
        )
    if "base64" not in params:
        raise ConfigError("the data: URL is not base64-encoded", "use data:image/...;base64,<data>")
    payload = re.sub(r"\s+", "", found.group(3))
    # Base64 inflates by 4/3: refuse an absurd payload before decoding it.
    if len(payload) * 3 // 4 > _HARD_LIMIT:
        raise ConfigError(
            f"the data: URL holds about {_human_size(len(payload) * 3 // 4)}, far over the limit",
            "send a smaller image",
        )
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(
            f"the data: URL's base64 does not decode: {exc}", "check that it was copied whole"
        ) from exc
    return _from_bytes(data, "data: URL", max_bytes=max_bytes, max_side=max_side, declared=mime)


def _from_pil_image(img: Any, what: str, *, max_bytes: int, max_side: int) -> ImagePart:
    image_mod = _pil()
    if image_mod is None:  # pragma: no cover - a PIL image implies Pillow
        raise ConfigError("Pillow is not importable", "reinstall Pillow")
    w, h = img.size
    if w == 0 or h == 0:
        raise ConfigError(f"{what} is empty ({w}×{h})", "give an image with pixels in it")
    # Photos (RGB, many pixels) are far smaller as JPEG; charts and screenshots stay sharp as PNG.
    prefer_jpeg = img.mode in ("RGB", "CMYK", "YCbCr") and w * h > 1024 * 1024
    data, mime, scaled = _fit(
        image_mod, img, max_bytes=max_bytes, max_side=max_side, prefer_jpeg=prefer_jpeg, what=what
    )
    note = f"downscaled from {w}×{h}" if scaled is not img else ""
    return _part(data, mime, what, _pil_thumbnail(scaled), note=note)


def _from_figure(fig: Any, *, max_bytes: int, max_side: int) -> ImagePart:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", bbox_inches="tight", dpi=100)
    except Exception as exc:  # a figure can fail to draw (bad data, a broken artist...)
        raise ConfigError(
            f"the matplotlib figure could not be drawn: {type(exc).__name__}: {exc}", "check the figure"
        ) from exc
    data = buf.getvalue()
    # The tight bounding box changes the size: name the picture actually sent.
    dims = _dimensions(data)
    what = f"matplotlib figure {dims[0]}×{dims[1]}" if dims else "matplotlib figure"
    return _from_bytes(data, what, max_bytes=max_bytes, max_side=max_side)


def _from_string(text: str, *, max_bytes: int, max_side: int) -> ImagePart:
    text = text.strip()
    if not text:
        raise ConfigError("--image was given an empty value", f"give {_ACCEPTED}")
    scheme = _SCHEME.match(text)
    # One letter before ':' is a Windows drive (C:\photo.png), not a scheme.
    if scheme and len(scheme.group(1)) > 1:
        name = scheme.group(1).lower()
        if name == "data":
            return _from_data_url(text, max_bytes=max_bytes, max_side=max_side)
        if name in ("http", "https"):
            parts = urlsplit(text)
            if not parts.netloc or any(c.isspace() or ord(c) < 32 for c in text):
                raise ConfigError(f"malformed URL: {_shorten(text)}", "give a full http(s):// URL")
            return ImagePart(
                {"type": "image_url", "image_url": {"url": text}}, "", 0, f"{_shorten(text)} (remote)", None
            )
        if name == "file":
            local = urlsplit(text).path
            raise ConfigError(
                f"file: URLs are not accepted: {_shorten(text)}", f"give the path itself ({local})"
            )
        raise ConfigError(
            f"unsupported URL scheme {name}: in {_shorten(text)}",
            "use a file path, an http(s):// URL, or a data:image/...;base64 URL",
        )
    return _from_path(Path(text), text, max_bytes=max_bytes, max_side=max_side)


def image_part(
    source: Any,
    *,
    namespace: Optional[Mapping[str, Any]] = None,
    max_bytes: int = 20 * 1024 * 1024,
    max_side: int = 2048,
) -> ImagePart:
    """Turn ``source`` into an image content part, checking it is an image and within the limits.

    ``source`` may be the name of a variable in ``namespace`` (looked up first), a local path (``~``
    expanded), an http(s) URL (sent as is, not downloaded), a ``data:image/...;base64,`` URL, raw bytes, a
    PIL image or a matplotlib figure. An image over ``max_bytes``, or with a side over ``max_side`` pixels,
    is downscaled when Pillow is installed (the label says so) and refused with a :class:`ConfigError`
    otherwise; a limit of 0 turns that check off.

    Raises:
        ConfigError: missing file, not an image, unsupported scheme or type, too large without Pillow.
    """
    if isinstance(source, str) and namespace is not None and source.strip().isidentifier():
        key = source.strip()
        if key in namespace:
            value = namespace[key]
            try:
                # No namespace for the value: a variable holding "other_var" is a path, not a second lookup.
                inner = image_part(value, max_bytes=max_bytes, max_side=max_side)
            except ConfigError as exc:
                raise ConfigError(f"variable {key}: {exc.message}", exc.hint) from exc
            return inner._replace(label=f"{key}: {inner.label}")
        if not Path(key).expanduser().exists():
            raise ConfigError(
                f"no variable or file named {key}",
                f"define the variable first, or give {_ACCEPTED}",
            )
    if isinstance(source, str):
        return _from_string(source, max_bytes=max_bytes, max_side=max_side)
    if isinstance(source, os.PathLike):
        path = Path(os.fspath(source))
        return _from_path(path, str(path), max_bytes=max_bytes, max_side=max_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _from_bytes(data, "bytes", max_bytes=max_bytes, max_side=max_side)
    pil_image = _loaded_class("PIL.Image", "Image")
    if pil_image is not None and isinstance(source, pil_image):
        w, h = source.size
        return _from_pil_image(source, f"PIL image {w}×{h}", max_bytes=max_bytes, max_side=max_side)
    figure = _loaded_class("matplotlib.figure", "Figure")
    if figure is not None and isinstance(source, figure):
        return _from_figure(source, max_bytes=max_bytes, max_side=max_side)
    raise ConfigError(f"cannot send a {type(source).__name__} as an image", f"--image takes {_ACCEPTED}")
