import io
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from photopoet.config import IngestConfig
from photopoet.core.cache import Cache
from photopoet.stages.ingest import (
    ingest,
    iter_files,
    load_working_copy,
    parse_exif_datetime,
    parse_gps,
)

CFG = IngestConfig(thumb_size=128, workers=2)


def run(root: Path, cfg: IngestConfig = CFG, cache: Cache | None = None):
    with cache or Cache.memory() as c:
        res = ingest(root, cfg, c, progress=False)
        copies = {p.sha256: load_working_copy(c, p.sha256) for p in res.photos}
    return res, copies


def by_name(items) -> dict:
    return {Path(x.path).name: x for x in items}


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims `width` x `height` but holds a few bytes of pixel data: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_every_format_ingested_in_walk_order(photo_dir, images):
    res, copies = run(photo_dir)
    assert res.excluded == []
    names = [os.path.relpath(p.path, photo_dir) for p in res.photos]
    assert names == ["chelsea.webp", "coffee-small.heic", "day1/astronaut.jpg", "day1/coffee.png", "rocket.tif"]
    got = by_name(res.photos)
    assert {n: p.format for n, p in got.items()} == {
        "chelsea.webp": "WEBP",
        "coffee-small.heic": "HEIF",
        "astronaut.jpg": "JPEG",
        "coffee.png": "PNG",
        "rocket.tif": "TIFF",
    }
    assert (got["coffee.png"].width, got["coffee.png"].height) == images["coffee"].size
    assert (got["coffee-small.heic"].width, got["coffee-small.heic"].height) == (300, 200)
    for p in res.photos:
        assert p.path == os.path.join(os.path.abspath(photo_dir), os.path.relpath(p.path, photo_dir))
        assert p.size_bytes == os.path.getsize(p.path)
        im = copies[p.sha256]
        assert im.mode == "RGB" and max(im.size) == 128  # every sample is larger than the working size
        assert abs(im.width / im.height - p.width / p.height) < 0.02
    assert (res.decoded, res.reused) == (5, 0)
    # the working copy still looks like the photo: PNG is lossless, so compare with the source reduced
    ref = images["coffee"].copy()
    ref.thumbnail((128, 128))
    diff = np.abs(np.asarray(copies[got["coffee.png"].sha256], float) - np.asarray(ref, float)).mean()
    assert diff < 6


def test_capture_time_and_gps(photo_dir, images, make_exif):
    images["rocket"].save(photo_dir / "fallback.jpg", exif=make_exif(datetime_="2023:12:31 23:59:58"))
    images["rocket"].save(photo_dir / "blank-date.jpg", exif=make_exif(taken="0000:00:00 00:00:00"))
    bad_gps = {1: "S", 2: (95.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)}  # latitude out of range
    images["rocket"].save(photo_dir / "bad-gps.jpg", exif=make_exif(taken="garbage", gps=bad_gps))
    res, _ = run(photo_dir)
    got = by_name(res.photos)
    assert got["astronaut.jpg"].taken_at == "2024-05-01T10:11:12"
    assert got["astronaut.jpg"].gps == pytest.approx((52.5, -1.25))
    assert got["fallback.jpg"].taken_at == "2023-12-31T23:59:58"
    assert got["blank-date.jpg"].taken_at is None and got["blank-date.jpg"].gps is None
    assert got["bad-gps.jpg"].taken_at is None and got["bad-gps.jpg"].gps is None
    assert got["coffee.png"].taken_at is None


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("2024:05:01 10:11:12", "2024-05-01T10:11:12"),
        (b"2024:05:01 10:11:12\x00", "2024-05-01T10:11:12"),
        ("2024-05-01T10:11:12.345", "2024-05-01T10:11:12"),
        ("2024:02:30 10:00:00", None),
        ("    :  :     :  :  ", None),
        ("", None),
        (None, None),
        (12345, None),
    ],
)
def test_parse_exif_datetime(value, want):
    assert parse_exif_datetime(value) == want


def test_parse_gps_signs_and_bad_values():
    assert parse_gps({1: "S", 2: (33.0, 51.0, 36.0), 3: b"E", 4: (151.0, 12.0, 0.0)}) == pytest.approx((-33.86, 151.2))
    assert parse_gps({1: "N", 2: (1.0, 0.0, 0.0), 3: "W"}) is None  # no longitude
    assert parse_gps({1: "N", 2: (float("nan"), 0, 0), 3: "W", 4: (1.0, 0, 0)}) is None
    assert parse_gps({}) is None


def _corner_image() -> Image.Image:
    """A 300x200 grey landscape with a red block in its stored top-left corner."""
    a = np.full((200, 300, 3), 128, np.uint8)
    a[:60, :60] = (255, 0, 0)
    return Image.fromarray(a)


def _red_corner(im: Image.Image) -> str:
    a = np.asarray(im).astype(float)
    h, w = a.shape[:2]
    k = max(2, min(h, w) // 8)
    corners = {
        "top-left": a[:k, :k],
        "top-right": a[:k, -k:],
        "bottom-left": a[-k:, :k],
        "bottom-right": a[-k:, -k:],
    }
    red = [n for n, c in corners.items() if c[..., 0].mean() > 200 and c[..., 1].mean() < 60]
    assert len(red) == 1, red
    return red[0]


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (300, 200), "top-left"),
        (3, (300, 200), "bottom-right"),
        (6, (200, 300), "top-right"),
        (8, (200, 300), "bottom-left"),
    ],
)
def test_exif_orientation_turns_pixels_upright(tmp_path, make_exif, orientation, size, corner):
    root = tmp_path / "p"
    root.mkdir()
    _corner_image().save(root / "x.jpg", quality=95, exif=make_exif(orientation=orientation))
    res, copies = run(root)
    (p,) = res.photos
    assert (p.width, p.height) == size and p.orientation == orientation
    im = copies[p.sha256]
    assert (im.width > im.height) == (size[0] > size[1])
    assert _red_corner(im) == corner


def test_heic_orientation(tmp_path, make_exif):
    root = tmp_path / "p"
    root.mkdir()
    _corner_image().save(root / "x.heic", format="HEIF", quality=90, exif=make_exif(orientation=6).tobytes())
    res, copies = run(root)
    (p,) = res.photos
    assert (p.width, p.height) == (200, 300) and p.orientation == 6
    assert _red_corner(copies[p.sha256]) == "top-right"


def test_bad_files_excluded_with_reasons_rest_ingested(photo_dir):
    good = photo_dir / "day1" / "astronaut.jpg"
    data = good.read_bytes()
    bad = photo_dir / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "half.jpg").write_bytes(data[: len(data) // 2])
    (bad / "text.jpg").write_text("this is not a photo\n")
    (bad / "notes.txt").write_text("shot list\n")
    (bad / "README").write_text("no extension\n")
    (bad / ".DS_Store").write_bytes(b"\0\0\0\1Bud1" + bytes(100))
    (bad / "._astronaut.jpg").write_bytes(b"\x00\x05\x16\x07" + bytes(80))  # macOS AppleDouble
    (bad / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    os.mkfifo(bad / "pipe.jpg")  # must not hang trying to read it
    res, _ = run(photo_dir)

    assert len(res.photos) == 5
    reasons = {os.path.relpath(e.path, photo_dir): e.reason for e in res.excluded}
    assert reasons.pop("bad/half.jpg").startswith("corrupt or truncated image: image file is truncated")
    assert reasons == {
        "bad/.DS_Store": "not an image (no extension)",
        "bad/._astronaut.jpg": "not an image: cannot identify image file",
        "bad/README": "not an image (no extension)",
        "bad/bomb.png": "too large: 100000 x 100000 px exceeds max_pixels 200000000",
        "bad/empty.jpg": "empty file (0 bytes)",
        "bad/notes.txt": "not an image (extension .txt)",
        "bad/pipe.jpg": "not a regular file (named pipe)",
        "bad/text.jpg": "not an image: cannot identify image file",
    }
    assert [e.path for e in res.excluded] == sorted(e.path for e in res.excluded)
    assert len(res.photos) + len(res.excluded) == count_files(photo_dir)
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard is back after the run


def test_max_pixels_checked_before_decoding(tmp_path, images, monkeypatch):
    root = tmp_path / "p"
    root.mkdir()
    images["astronaut"].resize((1200, 900)).save(root / "big.jpg")
    images["astronaut"].save(root / "ok.jpg")
    loaded: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: (loaded.append(self.size), real_load(self))[1])
    res, _ = run(root, IngestConfig(thumb_size=128, max_pixels=1_000_000))
    assert [Path(p.path).name for p in res.photos] == ["ok.jpg"]
    assert [(Path(e.path).name, e.reason) for e in res.excluded] == [
        ("big.jpg", "too large: 1200 x 900 px exceeds max_pixels 1000000")
    ]
    # ok.jpg (draft-decoded to 128 px) and working copies were loaded; big.jpg not at full nor at a draft size
    assert loaded and set(loaded) == {(128, 128)}


def test_jpeg_decoded_at_reduced_size(tmp_path, images, monkeypatch, make_exif):
    """libjpeg's DCT scaling (draft mode): a 4000x3000 JPEG is decoded at 1000x750 for a 512 px copy."""
    root = tmp_path / "p"
    root.mkdir()
    big = images["astronaut"].resize((4000, 3000))
    big.save(root / "big.jpg", quality=80)
    big.save(root / "big-rotated.jpg", quality=80, exif=make_exif(orientation=6))
    big.save(root / "big.png", compress_level=1)
    before_thumbnail: list[tuple[int, int]] = []
    real = Image.Image.thumbnail

    def spy(self, size, *a, **k):
        before_thumbnail.append(self.size)
        return real(self, size, *a, **k)

    monkeypatch.setattr(Image.Image, "thumbnail", spy)
    res, copies = run(root, IngestConfig(thumb_size=512))
    assert sorted(before_thumbnail) == [(750, 1000), (1000, 750), (4000, 3000)]  # PNG has no draft mode
    sizes = {Path(p.path).name: ((p.width, p.height), copies[p.sha256].size) for p in res.photos}
    assert sizes == {
        "big.jpg": ((4000, 3000), (512, 384)),
        "big-rotated.jpg": ((3000, 4000), (384, 512)),
        "big.png": ((4000, 3000), (512, 384)),
    }


def test_colour_modes_become_rgb(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    rgba = np.zeros((100, 160, 4), np.uint8)
    rgba[:, :80] = (0, 0, 255, 255)  # left half opaque blue, right half fully transparent
    Image.fromarray(rgba, "RGBA").save(root / "rgba.png")
    Image.fromarray(rgba, "RGBA").convert("LA").save(root / "la.png")
    Image.fromarray(rgba, "RGBA").save(root / "rgba.webp", lossless=True)
    pal = Image.fromarray(rgba[..., :3]).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    pal.info["transparency"] = pal.getpixel((150, 50))
    pal.save(root / "p.png", transparency=pal.getpixel((150, 50)))
    Image.fromarray(rgba[..., :3]).convert("CMYK").save(root / "cmyk.jpg")
    ramp = np.tile(np.linspace(0, 65535, 160).astype(np.uint16), (100, 1))
    Image.fromarray(ramp).save(root / "gray16.tif")
    res, copies = run(root)
    assert res.excluded == [] and len(res.photos) == 6
    got = {Path(p.path).name: np.asarray(copies[p.sha256]).astype(float) for p in res.photos}
    for name in ("rgba.png", "rgba.webp", "p.png"):
        left, right = got[name][:, 10:50].mean((0, 1)), got[name][:, -50:-10].mean((0, 1))
        assert left == pytest.approx((0, 0, 255), abs=12), name
        assert right == pytest.approx((255, 255, 255), abs=12), name  # transparent -> white
    assert got["la.png"][:, -50:-10].mean() > 240
    assert got["cmyk.jpg"][:, 10:50].mean((0, 1)) == pytest.approx((0, 0, 255), abs=20)
    g = got["gray16.tif"]
    assert g[:, :5].mean() < 15 and g[:, -5:].mean() > 240 and 100 < g.mean() < 155  # scaled, not clipped


def test_unicode_names(tmp_path, images):
    root = tmp_path / "照片 2024"
    (root / "Café").mkdir(parents=True)
    images["coffee"].save(root / "Café" / "咖啡 café.jpg")
    images["chelsea"].save(root / "Ünïcödé 猫.png")
    res, _ = run(root)
    assert res.excluded == []
    assert sorted(Path(p.path).name for p in res.photos) == ["Ünïcödé 猫.png", "咖啡 café.jpg"]
    assert all(os.path.exists(p.path) for p in res.photos)


def test_name_that_is_not_utf8_is_reported_not_fatal(photo_dir, images):
    bad = os.fsencode(photo_dir) + b"/caf\xe9 latin-1.jpg"
    with open(bad, "wb") as f:
        images["coffee"].save(f, "JPEG")
    res, _ = run(photo_dir)
    assert len(res.photos) == 5
    assert [(Path(e.path).name, e.reason) for e in res.excluded] == [
        ("caf\\xe9 latin-1.jpg", "name is not valid UTF-8 (rename it to include it)")
    ]
    e = res.excluded[0]
    assert e.path.encode("utf-8")  # printable, storable


def test_symlinks_followed_once_loops_end(tmp_path, images):
    root = tmp_path / "p"
    (root / "a" / "deep").mkdir(parents=True)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    images["coffee"].save(root / "a" / "coffee.jpg")
    images["rocket"].save(root / "a" / "deep" / "rocket.jpg")
    images["chelsea"].save(outside / "cat.jpg")
    (root / "a" / "deep" / "up").symlink_to("../..", target_is_directory=True)  # loop back to the root
    (root / "a" / "self").symlink_to(".", target_is_directory=True)  # loop onto itself
    (root / "b-same-as-a").symlink_to("a", target_is_directory=True)  # a second path to a folder
    (root / "ext").symlink_to(outside, target_is_directory=True)  # a folder outside the root
    (root / "best.jpg").symlink_to("a/coffee.jpg")  # a file symlink: listed under its own path too
    (root / "gone.jpg").symlink_to("nowhere.jpg")

    def hung(*_):
        raise TimeoutError("the walk did not end: symlink loop followed")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        res, _ = run(root)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    rel = [os.path.relpath(p.path, root) for p in res.photos]
    assert rel == ["a/coffee.jpg", "a/deep/rocket.jpg", "best.jpg", "ext/cat.jpg"]
    assert [(os.path.relpath(e.path, root), e.reason) for e in res.excluded] == [("gone.jpg", "broken symlink")]
    assert res.photos[0].sha256 == res.photos[2].sha256
    assert (res.decoded, res.reused) == (4, 0)  # the file symlink's content was decoded once for both paths

    files, excluded = iter_files(root, IngestConfig(follow_symlinks=False))
    assert [os.path.relpath(f, root) for f in files] == ["a/coffee.jpg", "a/deep/rocket.jpg"]
    assert {os.path.relpath(e.path, root) for e in excluded} == {
        "a/deep/up",
        "a/self",
        "b-same-as-a",
        "best.jpg",
        "ext",
        "gone.jpg",
    }
    assert {e.reason for e in excluded} == {"symlink not followed (ingest.follow_symlinks is off)"}


def test_photo_folder_left_untouched(photo_dir, snapshot, tmp_path):
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (photo_dir / "link.jpg").symlink_to("rocket.tif")
    before = snapshot(photo_dir)
    with Cache(tmp_path / "cache" / "c.sqlite3") as cache:
        for _ in range(2):  # a first run and a cached rerun
            res = ingest(photo_dir, CFG, cache, progress=False)
            assert len(res.photos) + len(res.excluded) == 7
    assert snapshot(photo_dir) == before
    assert not list(photo_dir.rglob("*.sqlite3*"))


def test_root_must_be_a_folder(tmp_path, photo_dir):
    with pytest.raises(FileNotFoundError):
        ingest(tmp_path / "missing", CFG, Cache.memory(), progress=False)
    with pytest.raises(NotADirectoryError):
        ingest(photo_dir / "rocket.tif", CFG, Cache.memory(), progress=False)


def test_load_working_copy_unknown_sha():
    with Cache.memory() as c, pytest.raises(KeyError, match="ingest the photo first"):
        load_working_copy(c, "0" * 64)


def test_working_copy_is_jpeg(photo_dir):
    with Cache.memory() as c:
        res = ingest(photo_dir, CFG, c, progress=False)
        data = c.get_thumb(res.photos[0].sha256)
    assert Image.open(io.BytesIO(data)).format == "JPEG"


def test_images_recognised_by_content_not_by_name(tmp_path, images):
    """Issue 19: every still-image format Pillow decodes, whatever the file is called; the format Pillow reports
    is recorded. Fixtures like another dedupe tool's: PPM, PGM, PBM, GIF, TIFF, WebP, BMP, MPO, JPEG bytes
    under .png / .bmp names."""
    cat = images["chelsea"].resize((120, 80))
    root = tmp_path / "formats"
    root.mkdir()
    cat.save(root / "colour.ppm")
    cat.convert("L").save(root / "grey.pgm")
    cat.convert("1").save(root / "marbles.pbm")
    frames = [cat.convert("P"), images["coffee"].resize((120, 80)).convert("P")]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    cat.save(root / "scan.tiff")
    cat.save(root / "web.webp")
    cat.save(root / "paint.bmp")
    cat.save(root / "camera.mpo", "MPO", save_all=True, append_images=[images["coffee"].resize((120, 80))])
    cat.save(root / "jpeg-bytes.png", "JPEG")
    cat.save(root / "jpeg-bytes.bmp", "JPEG")
    cat.save(root / "png-bytes.dat", "PNG")
    cat.save(root / "no-extension", "JPEG")
    (root / "notes.txt").write_text("shot list\n")
    (root / "random.bin").write_bytes(bytes(range(256)) * 4)
    res, copies = run(root)
    got = {Path(p.path).name: p.format for p in res.photos}
    assert got == {
        "colour.ppm": "PPM",
        "grey.pgm": "PPM",
        "marbles.pbm": "PPM",
        "anim.gif": "GIF",
        "scan.tiff": "TIFF",
        "web.webp": "WEBP",
        "paint.bmp": "BMP",
        "camera.mpo": "MPO",
        "jpeg-bytes.png": "JPEG",
        "jpeg-bytes.bmp": "JPEG",
        "png-bytes.dat": "PNG",
        "no-extension": "JPEG",
    }
    assert {Path(e.path).name: e.reason for e in res.excluded} == {
        "notes.txt": "not an image (extension .txt)",
        "random.bin": "not an image (extension .bin)",
    }
    gif = next(p for p in res.photos if p.path.endswith("anim.gif"))
    first = np.asarray(copies[gif.sha256], dtype=float).mean(axis=(0, 1))
    want = np.asarray(frames[0].convert("RGB"), dtype=float).mean(axis=(0, 1))
    assert np.abs(first - want).max() < 12  # the first frame
    assert all(copies[p.sha256].mode == "RGB" for p in res.photos)


def test_posts_json_records_the_format(tmp_path, images):
    from photopoet.records import Understood
    from photopoet.stages.render import posts_document

    root = tmp_path / "p"
    root.mkdir()
    images["coffee"].resize((90, 60)).save(root / "x.pgm.png", "PPM")
    res, _ = run(root)
    doc = posts_document([Understood(photo=p) for p in res.photos], [], res.excluded)
    assert [ph["format"] for ph in doc["photos"]] == ["PPM"]


def _exif_with_oversized_tag() -> bytes:
    """An EXIF block whose ImageDescription claims 100,000 bytes: Pillow warns 'Tag data larger than file'."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHII", 0x010E, 2, 100_000, 26) + struct.pack(">I", 0)
    return b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + b"hello\x00"


def test_warnings_while_reading_a_photo_name_the_file(tmp_path, images, recwarn):
    """Issue 19: Pillow's 'Tag data larger than file' printed without a file name."""
    root = tmp_path / "p"
    root.mkdir()
    images["coffee"].resize((120, 80)).save(root / "odd-exif.jpg", exif=_exif_with_oversized_tag())
    images["chelsea"].resize((120, 80)).save(root / "fine.jpg")
    res, _ = run(root)
    assert len(res.photos) == 2
    assert [(Path(w.path).name, "Tag data larger than file" in w.message) for w in res.warnings] == [
        ("odd-exif.jpg", True)
    ]
    assert not [w for w in recwarn if "Tag data" in str(w.message)]  # kept with the name, not printed bare
    with Cache(tmp_path / "c.sqlite3") as c:
        first = ingest(root, CFG, c, progress=False)
        again = ingest(root, CFG, c, progress=False)  # from the cache: the warning is still reported
    assert again.decoded == 0 and again.warnings == first.warnings == res.warnings


def test_png_text_chunk_bomb_is_called_what_it_is(tmp_path, images):
    """Issue 19: a PNG whose compressed text chunk expands past Pillow's limit was called 'corrupt'."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "A" * 20_000_000, zip=True)
    root = tmp_path / "p"
    root.mkdir()
    images["coffee"].resize((60, 40)).save(root / "bomb.png", pnginfo=info)
    assert (root / "bomb.png").stat().st_size < 200_000
    res, _ = run(root)
    (e,) = res.excluded
    assert "corrupt" not in e.reason
    assert e.reason.startswith("too large:") and "text chunk" in e.reason
