"""Images attached with ``--image``: every kind of source, the checks before sending, with and without
Pillow. The no-Pillow tests hide Pillow even when it is installed, so both paths run everywhere."""

from __future__ import annotations

import base64
import io
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest

from shenma_magic import _images
from shenma_magic._errors import ConfigError, ShenmaError
from shenma_magic._images import ImagePart, image_part, sniff_mime
from tests._util import imported_by

# -- image bytes built by hand, so the tests need no Pillow --------------------------------------------------


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(w: int, h: int, *, noise: bool = False) -> bytes:
    """A valid RGB PNG; ``noise`` makes it incompressible (about 3 bytes a pixel)."""
    rows = b"".join(b"\x00" + (os.urandom(3 * w) if noise else b"\xff\x00\x00" * w) for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def jpeg_header(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dht = b"\xff\xc4" + struct.pack(">H", 5) + b"\x00\x00\x00"  # C4 is in the SOF range but is not a frame
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + dht + b"\xff\xff" + sof + b"\xff\xd9"


def gif_header(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00" + b"\x3b"


def bmp_header(w: int, h: int) -> bytes:
    return b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, w, -h) + b"\x00" * 28


def webp_header(kind: bytes, w: int, h: int) -> bytes:
    head = b"RIFF" + struct.pack("<I", 100) + b"WEBP" + kind + struct.pack("<I", 80)
    if kind == b"VP8 ":
        body = b"\x00\x00\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", w, h)
    elif kind == b"VP8L":
        body = b"\x2f" + struct.pack("<I", (w - 1) | ((h - 1) << 14))
    else:
        body = b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    return head + body + b"\x00" * 16


def decoded(part: ImagePart) -> bytes:
    url = part.part["image_url"]["url"]
    assert url.startswith(f"data:{part.mime};base64,")
    return base64.b64decode(url.split(",", 1)[1])


@pytest.fixture
def no_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import PIL`` fail, as on a machine without Pillow."""
    for name in ("PIL", "PIL.Image", "PIL.ImageOps"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def pil() -> Any:
    return pytest.importorskip("PIL.Image")


# -- sniffing and sizes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (png_bytes(2, 2), "image/png"),
        (jpeg_header(10, 10), "image/jpeg"),
        (gif_header(1, 1), "image/gif"),
        (b"GIF87a" + b"\x00" * 10, "image/gif"),
        (webp_header(b"VP8 ", 5, 5), "image/webp"),
        (bmp_header(3, 3), "image/bmp"),
        (b"", None),
        (b"BMW makes cars and this text is long enough", None),  # "BM" alone is not a bitmap
        (b"%PDF-1.7\n", None),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),  # RIFF, but audio
        (b"hello", None),
    ],
)
def test_sniff_mime(data: bytes, mime: str | None) -> None:
    assert sniff_mime(data) == mime


@pytest.mark.parametrize(
    ("data", "dims"),
    [
        (png_bytes(300, 7), (300, 7)),
        (jpeg_header(4032, 3024), (4032, 3024)),
        (gif_header(640, 480), (640, 480)),
        (bmp_header(800, 600), (800, 600)),  # stored top-down: negative height
        (webp_header(b"VP8 ", 1000, 700), (1000, 700)),
        (webp_header(b"VP8L", 1000, 700), (1000, 700)),
        (webp_header(b"VP8X", 5000, 3000), (5000, 3000)),
        (b"\xff\xd8\xff", None),  # a JPEG that stops before any frame header
        (b"not an image", None),
    ],
)
def test_dimensions_from_headers(data: bytes, dims: tuple[int, int] | None) -> None:
    assert _images._dimensions(data) == dims


# -- local files -------------------------------------------------------------------------------------------


def test_local_png_becomes_a_data_url(tmp_path: Path) -> None:
    data = png_bytes(20, 10)
    (tmp_path / "chart.png").write_bytes(data)
    part = image_part(str(tmp_path / "chart.png"))
    assert part.part["type"] == "image_url"
    assert set(part.part) == {"type", "image_url"}
    assert part.mime == "image/png"
    assert part.size == len(data)
    assert decoded(part) == data
    assert part.label == f"chart.png ({len(data)} B, image/png)"
    assert part.thumbnail is not None and part.thumbnail.startswith("data:image/")


def test_mime_comes_from_the_bytes_not_the_extension(tmp_path: Path) -> None:
    (tmp_path / "really_a_gif.png").write_bytes(gif_header(4, 4))
    part = image_part(tmp_path / "really_a_gif.png", max_side=0)
    assert part.mime == "image/gif"


def test_label_sizes_in_kb(tmp_path: Path, no_pillow: None) -> None:
    data = png_bytes(200, 200, noise=True)  # about 118 KB
    (tmp_path / "noise.png").write_bytes(data)
    part = image_part(tmp_path / "noise.png")
    assert f"({round(len(data) / 1024)} KB, image/png)" in part.label


def test_pathlib_and_home_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "a.png").write_bytes(png_bytes(3, 3))
    assert image_part("~/a.png").mime == "image/png"
    assert image_part(Path("~/a.png")).mime == "image/png"
    assert image_part("  ~/a.png  ").mime == "image/png"  # stray spaces from the magic's arguments


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "photo.jpg"
    with pytest.raises(ConfigError) as info:
        image_part(str(missing))
    assert str(missing) in info.value.message
    assert info.value.hint


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        image_part(tmp_path)


def test_windows_drive_letter_is_a_path_not_a_scheme() -> None:
    with pytest.raises(ConfigError, match="no such image file"):
        image_part(r"C:\photos\cat.png")


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (b"%PDF-1.4\n%...", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (b"II*\x00\x08\x00\x00\x00", "TIFF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        (b"PK\x03\x04\x14\x00", "ZIP"),
        ("名字,年龄\n张三,30\n".encode(), "text"),
        (b"", "empty"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 8, "bytes 00 01 02"),
    ],
)
def test_non_images_are_refused_saying_what_they_look_like(
    tmp_path: Path, content: bytes, looks_like: str
) -> None:
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        image_part(path)
    assert "upload.png" in info.value.message
    assert looks_like in info.value.message
    assert "PNG" in info.value.hint  # says which formats would do


# -- URLs --------------------------------------------------------------------------------------------------


def test_http_url_is_sent_as_is() -> None:
    url = "https://example.com/cat.png?size=large"
    part = image_part(url)
    assert part == ImagePart({"type": "image_url", "image_url": {"url": url}}, "", 0, f"{url} (remote)", None)


def test_long_url_label_is_shortened() -> None:
    url = "http://example.com/" + "x" * 300
    part = image_part(url)
    assert part.part["image_url"]["url"] == url  # the URL itself is untouched
    assert len(part.label) < 80 and part.label.endswith("… (remote)")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("file:///etc/passwd", "file: URLs are not accepted"),
        ("javascript:alert(1)", "unsupported URL scheme javascript"),
        ("ftp://example.com/a.png", "unsupported URL scheme ftp"),
        ("JAVASCRIPT:alert(1)", "unsupported URL scheme javascript"),
        ("http://", "malformed URL"),
        ("https://exa mple.com/a.png", "malformed URL"),
    ],
)
def test_other_schemes_are_refused(source: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        image_part(source)


def test_file_url_hint_gives_the_path() -> None:
    with pytest.raises(ConfigError) as info:
        image_part("file:///home/me/cat.png")
    assert "/home/me/cat.png" in info.value.hint


# -- data: URLs --------------------------------------------------------------------------------------------


def _data(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def test_data_url_is_validated_and_kept() -> None:
    data = png_bytes(5, 5)
    part = image_part(_data("image/png", data))
    assert part.mime == "image/png" and decoded(part) == data
    assert part.label.startswith("data: URL (")


def test_data_url_with_wrong_declared_type_is_corrected() -> None:
    part = image_part(_data("image/jpeg", png_bytes(5, 5)))
    assert part.mime == "image/png"
    assert part.part["image_url"]["url"].startswith("data:image/png;base64,")


def test_data_url_tolerates_line_breaks_and_missing_padding() -> None:
    data = png_bytes(5, 5)
    payload = base64.b64encode(data).decode().rstrip("=")
    wrapped = "\n".join(payload[i : i + 40] for i in range(0, len(payload), 40))
    assert decoded(image_part(f"DATA:image/png;base64,{wrapped}")) == data


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("data:text/plain;base64,aGVsbG8=", "holds text/plain, not an image"),
        ("data:,hello", "holds text/plain"),
        ("data:image/png,rawbytes", "not base64"),
        ("data:image/png;base64,!!!notbase64!!!", "does not decode"),
        ("data:image/png;base64", "malformed data: URL"),
        (_data("image/png", b"%PDF-1.4 not really"), "says image/png but it looks like a PDF"),
        (_data("image/png", "就是一段文字".encode()), "looks like text"),
    ],
)
def test_bad_data_urls(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        image_part(url)


def test_data_url_of_an_image_type_this_cannot_read_is_passed_on() -> None:
    heic = b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40
    part = image_part(_data("image/heic", heic))
    assert part.mime == "image/heic"
    assert decoded(part) == heic
    assert part.thumbnail is None  # browsers cannot show it


# -- in-memory sources and the namespace ------------------------------------------------------------------


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_raw_bytes(wrap: Any) -> None:
    data = png_bytes(4, 4)
    part = image_part(wrap(data))
    assert decoded(part) == data
    assert part.label.startswith("bytes (")


def test_variable_in_namespace(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png_bytes(3, 3))
    ns = {"shot": png_bytes(2, 2), "where": str(tmp_path / "a.png"), "截图": gif_header(1, 1)}
    assert image_part("shot", namespace=ns).label.startswith("shot: bytes (")
    assert image_part("where", namespace=ns).label.startswith("where: a.png (")
    assert image_part("截图", namespace=ns).mime == "image/gif"  # Chinese identifiers are identifiers


def test_namespace_is_checked_before_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "img").write_bytes(png_bytes(2, 2))
    assert image_part("img", namespace={"img": gif_header(1, 1)}).mime == "image/gif"
    assert image_part("img", namespace={}).mime == "image/png"  # no such variable: the file


def test_a_variable_holding_a_name_is_not_looked_up_again() -> None:
    with pytest.raises(ConfigError) as info:
        image_part("a", namespace={"a": "b", "b": png_bytes(1, 1)})
    assert info.value.message.startswith("variable a: ")


def test_unknown_name_says_neither_variable_nor_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no variable or file named picture"):
        image_part("picture", namespace={"other": 1})


@pytest.mark.parametrize("value", [42, {"url": "x"}, None, 3.5, object()])
def test_unsupported_types_list_what_is_accepted(value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        image_part(value)
    assert "cannot send a" in info.value.message
    for accepted in ("file path", "http(s)", "data:image", "bytes", "PIL image", "matplotlib figure"):
        assert accepted in info.value.hint


def test_unsupported_variable_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^variable n: cannot send a int"):
        image_part("n", namespace={"n": 5})


def test_errors_are_shenma_errors() -> None:
    assert issubclass(ConfigError, ShenmaError)
    with pytest.raises(ShenmaError):
        image_part("")


# -- limits without Pillow ---------------------------------------------------------------------------------


def test_without_pillow_too_many_bytes_is_an_error_before_reading(tmp_path: Path, no_pillow: None) -> None:
    path = tmp_path / "photo.png"
    with path.open("wb") as fh:
        fh.write(png_bytes(1, 1))
        fh.truncate(int(25.3 * 1024 * 1024))  # sparse: the size is real, the disk is not used
    with pytest.raises(ConfigError) as info:
        image_part(path)
    assert info.value.message == "photo.png is 25.3 MB, over the 20 MB limit"
    assert "Pillow" in info.value.hint


def test_without_pillow_a_big_non_image_says_it_is_not_an_image(tmp_path: Path, no_pillow: None) -> None:
    path = tmp_path / "movie.png"
    with path.open("wb") as fh:
        fh.write(b"\x00\x00\x00\x20ftypisom")
        fh.truncate(30 * 1024 * 1024)
    with pytest.raises(ConfigError, match="MP4"):
        image_part(path)


def test_without_pillow_in_memory_bytes_over_the_limit(no_pillow: None) -> None:
    data = png_bytes(100, 100, noise=True)
    with pytest.raises(ConfigError) as info:
        image_part(data, max_bytes=10 * 1024)
    assert info.value.message == "bytes is 29 KB, over the 10 KB limit"


def test_without_pillow_a_side_over_the_limit_is_an_error(no_pillow: None) -> None:
    with pytest.raises(ConfigError) as info:
        image_part(jpeg_header(4032, 3024))
    assert info.value.message == "bytes is 4032×3024, over the 2048 px limit"
    assert "Pillow" in info.value.hint


def test_limits_of_zero_are_off(no_pillow: None) -> None:
    data = png_bytes(3000, 10)
    assert image_part(data, max_side=0, max_bytes=0).size == len(data)


def test_without_pillow_the_thumbnail_is_the_image_when_small(no_pillow: None) -> None:
    small = png_bytes(10, 10)
    part = image_part(small)
    assert part.thumbnail == part.part["image_url"]["url"]
    big = png_bytes(200, 200, noise=True)  # over 64 KB
    assert image_part(big).thumbnail is None


def test_huge_files_are_refused_even_with_pillow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_images, "_HARD_LIMIT", 1024 * 1024)
    path = tmp_path / "giant.png"
    with path.open("wb") as fh:
        fh.write(png_bytes(1, 1))
        fh.truncate(2 * 1024 * 1024)
    with pytest.raises(ConfigError, match="too large to process"):
        image_part(path, max_bytes=0)


# -- with Pillow -------------------------------------------------------------------------------------------


def _open(pil: Any, part: ImagePart) -> Any:
    img = pil.open(io.BytesIO(decoded(part)))
    img.load()
    return img


def test_pil_image_small_is_png_and_keeps_transparency(pil: Any) -> None:
    img = pil.new("RGBA", (64, 32), (255, 0, 0, 100))
    part = image_part(img)
    assert part.mime == "image/png"
    assert part.label.startswith("PIL image 64×32 (")
    back = _open(pil, part)
    assert back.size == (64, 32) and back.getpixel((0, 0)) == (255, 0, 0, 100)


def test_pil_image_large_photo_is_downscaled_to_jpeg(pil: Any) -> None:
    img = pil.new("RGB", (4000, 3000), (10, 200, 30))
    part = image_part(img)
    assert part.mime == "image/jpeg"
    assert "downscaled from 4000×3000" in part.label
    back = _open(pil, part)
    assert back.size == (2048, 1536)  # aspect kept


@pytest.mark.parametrize("mode", ["1", "L", "P", "CMYK", "I;16", "I", "F", "LA", "YCbCr"])
def test_pil_image_modes_all_encode(pil: Any, mode: str) -> None:
    part = image_part(pil.new(mode, (30, 20)))
    assert part.mime in ("image/png", "image/jpeg")
    assert _open(pil, part).size == (30, 20)
    assert part.thumbnail is not None


def test_pil_image_of_no_pixels_is_refused(pil: Any) -> None:
    with pytest.raises(ConfigError, match="empty"):
        image_part(pil.new("RGB", (0, 5)))


def test_pillow_downscales_a_file_over_the_byte_limit(tmp_path: Path, pil: Any) -> None:
    data = png_bytes(600, 400, noise=True)  # about 700 KB of noise
    (tmp_path / "noise.png").write_bytes(data)
    part = image_part(tmp_path / "noise.png", max_bytes=200 * 1024)
    assert part.size <= 200 * 1024
    assert "downscaled from 600×400" in part.label
    w, h = _open(pil, part).size
    assert abs(w / h - 1.5) < 0.02


def test_pillow_downscales_a_side_over_the_limit(pil: Any) -> None:
    buf = io.BytesIO()
    pil.new("RGB", (3000, 1000), "white").save(buf, format="JPEG")
    part = image_part(buf.getvalue(), max_side=1000)
    assert part.mime == "image/jpeg"
    assert _open(pil, part).size == (1000, 333)


def test_pillow_keeps_an_image_within_limits_untouched(pil: Any) -> None:
    buf = io.BytesIO()
    pil.new("RGB", (300, 200), "white").save(buf, format="JPEG")
    part = image_part(buf.getvalue())
    assert decoded(part) == buf.getvalue()
    assert "downscaled" not in part.label


def test_exif_rotation_is_applied_when_downscaling(pil: Any) -> None:
    exif = pil.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90° to portrait (phone photos)
    buf = io.BytesIO()
    pil.new("RGB", (400, 200), "white").save(buf, format="JPEG", exif=exif)
    part = image_part(buf.getvalue(), max_side=100)
    assert _open(pil, part).size == (50, 100)
    assert "downscaled from 200×400" in part.label


def test_pillow_thumbnail_is_small(pil: Any) -> None:
    part = image_part(pil.new("RGB", (1000, 500), "blue"))
    assert part.thumbnail is not None
    thumb = pil.open(io.BytesIO(base64.b64decode(part.thumbnail.split(",", 1)[1])))
    assert max(thumb.size) <= 160 and thumb.size == (160, 80)
    assert len(part.thumbnail) < 20_000


def test_pillow_cannot_decode_but_within_limits_is_sent_without_thumbnail(pil: Any) -> None:
    broken = png_bytes(50, 50)[:60]
    part = image_part(broken)
    assert decoded(part) == broken and part.thumbnail is None


def test_pillow_cannot_decode_and_over_the_limit_is_refused(pil: Any) -> None:
    with pytest.raises(ConfigError, match="cannot be decoded to downscale it"):
        image_part(jpeg_header(5000, 5000))


def test_an_image_that_cannot_get_small_enough(pil: Any) -> None:
    with pytest.raises(ConfigError, match="cannot be made smaller"):
        image_part(pil.new("RGBA", (64, 64), (0, 0, 0, 10)), max_bytes=10)


# -- matplotlib --------------------------------------------------------------------------------------------


def test_matplotlib_figure(tmp_path: Path) -> None:
    figure = pytest.importorskip("matplotlib.figure")
    fig = figure.Figure(figsize=(4, 3))
    fig.add_subplot().plot([1, 3, 2])
    part = image_part("fig", namespace={"fig": fig})
    assert part.mime == "image/png"
    w, h = _images._dimensions(decoded(part)) or (0, 0)
    assert 0 < w <= 400 and 0 < h <= 300  # dpi 100, tight box
    assert part.label.startswith(f"fig: matplotlib figure {w}×{h} (")


# -- nothing heavy at import -------------------------------------------------------------------------------


OPTIONAL = ("PIL", "matplotlib", "IPython", "requests")
TYPE_CHECK = (
    "import shenma_magic._images as m\ntry:\n    m.image_part(object())\nexcept m.ConfigError:\n    pass\n"
)
READ_GIF = TYPE_CHECK + "part = m.image_part(b'GIF89a' + bytes(8))\nassert part.mime == 'image/gif'\n"


def test_no_optional_library_is_imported_to_check_a_type() -> None:
    # Refusing an object that is not an image must not import Pillow (or anything) just for isinstance.
    assert imported_by(TYPE_CHECK, OPTIONAL) == []


def test_reading_an_image_imports_at_most_pillow() -> None:
    assert imported_by(READ_GIF, OPTIONAL) in ([], ["PIL"])


def test_an_image_is_read_where_pillow_cannot_be_imported() -> None:
    # Pillow is installed for the test suite; here it is blocked, as on a machine without it.
    assert imported_by(READ_GIF, OPTIONAL, block=["PIL"]) == []


# -- special files (issue 8.13): only regular files, size checked before reading, reading bounded ------------


def _special_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, what the error must call it)."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.png"
    folder.mkdir()
    links = {
        "link-to-dev-zero.png": Path("/dev/zero"),
        "link-to-fifo.png": fifo,
        "link-to-dir.png": folder,
    }
    for name, target in links.items():
        (tmp_path / name).symlink_to(target)
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    return {
        "fifo": (fifo, "FIFO"),
        "dev-zero": (Path("/dev/zero"), "character device"),
        "dev-urandom": (Path("/dev/urandom"), "character device"),
        "directory": (folder, "directory"),
        "link-to-dev-zero": (tmp_path / "link-to-dev-zero.png", "character device"),
        "link-to-fifo": (tmp_path / "link-to-fifo.png", "FIFO"),
        "link-to-dir": (tmp_path / "link-to-dir.png", "directory"),
        "link-loop": (loop, "loop"),
    }


@pytest.mark.parametrize(
    "name",
    [
        "fifo",
        "dev-zero",
        "dev-urandom",
        "directory",
        "link-to-dev-zero",
        "link-to-fifo",
        "link-to-dir",
        "link-loop",
    ],
)
@pytest.mark.parametrize("as_path", [False, True])
def test_special_files_are_refused_quickly_with_one_line(tmp_path: Path, name: str, as_path: bool) -> None:
    import threading
    import time

    path, what = _special_files(tmp_path)[name]
    outcome: list[BaseException] = []

    def attempt() -> None:
        try:
            image_part(path if as_path else str(path))
        except BaseException as exc:
            outcome.append(exc)

    start = time.monotonic()
    worker = threading.Thread(target=attempt, daemon=True)  # a FIFO that blocked would hang the test run
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive(), "reading the special file blocked"
    assert time.monotonic() - start < 2
    (error,) = outcome
    assert isinstance(error, ConfigError), error
    assert what in str(error) and "\n" not in str(error)
    if "link" in name and name != "link-loop":
        assert "a link to" in str(error)


def test_reading_is_bounded_even_for_a_file_that_lies_about_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /proc files say st_size 0 and have content: reading still stops at the limit (+1 byte to tell).
    monkeypatch.setattr(_images, "_HARD_LIMIT", 1000)
    reads: list[int] = []
    real = _images._read_at_most

    def spy(fh: Any, limit: int) -> bytes:
        reads.append(limit)
        return real(fh, limit)

    monkeypatch.setattr(_images, "_read_at_most", spy)
    big = tmp_path / "big.png"
    big.write_bytes(png_bytes(4, 4) + b"\x00" * 5000)
    with pytest.raises(ConfigError, match="too large"):
        image_part(str(big))
    assert reads == [512]  # fstat said too large: only the header was read
    small = tmp_path / "small.png"
    small.write_bytes(png_bytes(2, 2))
    assert image_part(str(small)).mime == "image/png"
    assert reads[-1] == 1001
