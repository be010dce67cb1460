"""models.ocr.TextReader on text rendered with real fonts: what it reads, where, and how it fails."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from photopoet.models import ocr
from photopoet.records import TextLine

pytestmark = pytest.mark.slow  # loads the OCR models that ship in rapidocr's wheel (about a second)

# fonts with CJK ideographs, where Debian and friends put them (none ships with matplotlib or Pillow)
CJK_FONTS = [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
]


def _font(size: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"), size)


def _words(lines: list[TextLine]) -> list[str]:
    return " ".join(t.text for t in lines).casefold().replace(",", " ").split()


def _poster(size: tuple[int, int] = (900, 500), scale: float = 1.0) -> tuple[Image.Image, list[tuple[int, ...]]]:
    """A poster-like image with two lines of type; also the pixel boxes the lines were drawn in."""
    im = Image.new("RGB", size, (250, 246, 235))
    d = ImageDraw.Draw(im)
    boxes = []
    for text, xy, fs in (("PHOTO EXHIBITION", (60, 80), 64), ("Main Auditorium, 15 August", (60, 260), 44)):
        x, y = int(xy[0] * scale), int(xy[1] * scale)
        f = _font(int(fs * scale))
        d.text((x, y), text, fill=(20, 20, 30), font=f)
        boxes.append(tuple(d.textbbox((x, y), text, font=f)))
    return im, boxes


@pytest.fixture(scope="module")
def reader() -> ocr.TextReader:
    pytest.importorskip("rapidocr", reason="rapidocr==3.10.0 is not installed in this environment")
    return ocr.TextReader()


def test_reads_the_words_of_a_rendered_poster_top_to_bottom(reader: ocr.TextReader) -> None:
    im, drawn = _poster()
    lines = reader.read(im)
    assert _words(lines) == ["photo", "exhibition", "main", "auditorium", "15", "august"]
    assert all(0.8 <= t.confidence <= 1.0 for t in lines)
    first, second = lines
    assert first.box[3] <= second.box[1]  # the title above the venue line
    # each box is where the line was drawn (fractions of the image's width and height, a few pixels of margin)
    w, h = im.size
    for line, (x0, y0, x1, y1) in zip(lines, drawn, strict=True):
        assert line.box[0] == pytest.approx(x0 / w, abs=0.03) and line.box[2] == pytest.approx(x1 / w, abs=0.03)
        assert line.box[1] == pytest.approx(y0 / h, abs=0.05) and line.box[3] == pytest.approx(y1 / h, abs=0.05)


def test_blank_and_textured_images_without_text_give_no_lines(reader: ocr.TextReader) -> None:
    assert reader.read(Image.new("RGB", (640, 480), "white")) == []
    assert reader.read(np.zeros((300, 500, 3), np.uint8)) == []
    gradient = np.linspace(0, 255, 640, dtype=np.uint8)[None, :].repeat(480, axis=0)
    assert reader.read(gradient) == []


def test_arrays_are_read_as_rgb_like_pil_images(reader: ocr.TextReader) -> None:
    im, _ = _poster()
    from_pil = reader.read(im)
    assert reader.read(np.asarray(im)) == from_pil
    assert _words(reader.read(np.asarray(im.convert("L")))) == _words(from_pil)
    assert _words(reader.read(np.asarray(im, dtype=np.float32) / 255.0)) == _words(from_pil)
    with pytest.raises(ValueError, match="H x W"):
        reader.read(np.zeros((4, 4, 2), np.uint8))


def test_a_big_photo_is_read_and_boxes_stay_fractions_of_it(reader: ocr.TextReader) -> None:
    im, drawn = _poster(size=(3600, 2000), scale=4.0)  # detection at 960 px, lines cut from up to 2000 px
    lines = reader.read(im)
    assert _words(lines) == ["photo", "exhibition", "main", "auditorium", "15", "august"]
    x0, y0, x1, y1 = drawn[0]
    assert lines[0].box[0] == pytest.approx(x0 / 3600, abs=0.03) and lines[0].box[2] == pytest.approx(
        x1 / 3600, abs=0.03
    )
    assert lines[0].box[1] == pytest.approx(y0 / 2000, abs=0.05)


def test_exif_orientation_is_applied(reader: ocr.TextReader, tmp_path: Path) -> None:
    im, _ = _poster()
    exif = Image.Exif()
    exif[0x0112] = 3  # stored upside down, shown turned 180 degrees
    im.rotate(180).save(tmp_path / "upside.jpg", quality=92, exif=exif)
    with Image.open(tmp_path / "upside.jpg") as stored:
        assert _words(reader.read(stored)) == ["photo", "exhibition", "main", "auditorium", "15", "august"]


def test_reads_chinese(reader: ocr.TextReader) -> None:
    font = next((f for f in CJK_FONTS if Path(f).is_file()), None)
    if font is None:
        pytest.skip(
            f"no font with Chinese characters here (looked for {', '.join(CJK_FONTS)}; Debian: fonts-wqy-microhei)"
        )
    im = Image.new("RGB", (900, 360), "white")
    d = ImageDraw.Draw(im)
    d.text((50, 60), "摄影展览", fill="black", font=ImageFont.truetype(font, 72))
    d.text((50, 200), "床前明月光 Montage 2025", fill="black", font=ImageFont.truetype(font, 56))
    lines = reader.read(im)
    assert [t.text.replace(" ", "") for t in lines] == ["摄影展览", "床前明月光Montage2025"]


def test_lines_round_trip_through_json(reader: ocr.TextReader) -> None:
    lines = reader.read(_poster()[0])
    back = [TextLine.from_dict(d) for d in json.loads(json.dumps([t.to_dict() for t in lines]))]
    assert back == lines


def test_missing_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "rapidocr", None)  # import rapidocr -> ImportError
    with pytest.raises(ocr.OCRUnavailable, match=r"pip install rapidocr==3\.10\.0 onnxruntime==1\.32\.0"):
        ocr.TextReader()


def test_missing_bundled_model_is_an_error_not_a_download(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rapidocr", reason="rapidocr==3.10.0 is not installed in this environment")
    monkeypatch.setattr(ocr, "REC_MODEL", "PP-OCRv6_rec_gone.onnx")
    with pytest.raises(ocr.OCRUnavailable, match="PP-OCRv6_rec_gone.onnx.*never downloads"):
        ocr.TextReader()


def test_importing_photopoet_does_not_load_the_engine() -> None:
    code = "import sys, photopoet, photopoet.models.ocr; print(sorted({'rapidocr', 'onnxruntime'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loads_and_reads_with_the_network_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rapidocr", reason="rapidocr==3.10.0 is not installed in this environment")

    def no_network(*args, **kwargs):
        raise AssertionError("the OCR reader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    fresh = ocr.TextReader(det_side=640)  # a new engine: its models load here, from the wheel
    assert _words(fresh.read(_poster()[0])) == ["photo", "exhibition", "main", "auditorium", "15", "august"]


def test_a_pickled_reader_reloads_with_its_settings(reader: ocr.TextReader) -> None:
    back = pickle.loads(pickle.dumps(reader))
    assert back is not reader and back.name == reader.name
    im = _poster()[0]
    assert back.read(im) == reader.read(im)
