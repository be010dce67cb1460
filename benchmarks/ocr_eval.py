"""OCR on the club's posters: word recall and precision against hand transcriptions, and seconds per photo.

Data: ``benchmarks/data/poster_text.json``, the text a person reads in 29 photos of ``../shared/club/images``
(posters and graphics, and four photographs with text in them), transcribed by hand line by line. Split by
post with the split the caption and haiku benchmarks use (``caption_eval.is_test``: first hex digit of
sha1(post_id) below 4); nothing here is fitted, so the train photos are only more data ("all").

Words: both sides NFKC-normalised and case-folded, every character that is not a letter or a digit turned into
a space, then split on spaces; Chinese characters (CJK ideographs) count one word each. Per photo the words
read and the words transcribed are matched as multisets (a word read twice counts twice only if it is there
twice); recall = matched / transcribed and precision = matched / read, summed over the photos (micro). "macro R"
is the mean of the per-photo recalls. Seconds per photo: wall-clock of one read (decode and model load
excluded), this machine's CPU cores shared with other work, so a rough figure.

Engines (each needs its package; one that is missing is skipped with the reason):

* ``rapidocr-<N>``: photopoet's :class:`~photopoet.models.ocr.TextReader` (rapidocr 3.10.0, PP-OCRv6 small
  models from its wheel, onnxruntime 1.32.0) with detection at N px on the long side;
* ``rapidocr-default``: the same package with its own defaults (detection scales the short side up to 736 px);
* ``rapidocr-onnxruntime``: rapidocr-onnxruntime 1.4.4, PP-OCRv4 models from its wheel (installed --no-deps:
  it asks for opencv-python, which would replace the headless OpenCV photopoet uses);
* ``tesseract``: Debian's tesseract 5 (``tesseract-ocr-eng`` + ``tesseract-ocr-chi-sim``) through pytesseract,
  words with confidence at least 50 joined per line.

    python benchmarks/ocr_eval.py [--club ../shared/club] [--engines rapidocr-960,tesseract] [--out out/ocr.jsonl]
        [--photo-side 512]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from photopoet.models.ocr import to_rgb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from caption_eval import is_test  # noqa: E402  (the benchmarks' split by post)

DATA = Path(__file__).resolve().parent / "data" / "poster_text.json"
CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{CJK}]|[^\s{CJK}]+")
ALL_ENGINES = ["rapidocr-768", "rapidocr-960", "rapidocr-1280", "rapidocr-default", "rapidocr-onnxruntime", "tesseract"]


def words(text: str) -> list[str]:
    """Normalised words of `text`: NFKC, case-folded, punctuation and symbols as spaces, CJK per character."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(c if unicodedata.category(c)[0] in "LN" else " " for c in s)
    return _TOKEN.findall(s)


def match(read: list[str], truth: list[str]) -> int:
    """Words of `read` found in `truth`, as multisets."""
    return sum((Counter(read) & Counter(truth)).values())


Engine = Callable[[Image.Image], list[str]]


def make_engine(name: str) -> Engine:
    """A function photo -> lines read, with its models loaded; ImportError when its package is missing."""
    if name.startswith("rapidocr-") and name[len("rapidocr-") :].isdigit():
        from photopoet.models.ocr import TextReader

        reader = TextReader(det_side=int(name[len("rapidocr-") :]))
        return lambda im: [t.text for t in reader.read(im)]
    if name == "rapidocr-default":
        import numpy as np
        from rapidocr import RapidOCR

        eng = RapidOCR(params={"Global.log_level": "error"})

        def run(im: Image.Image) -> list[str]:
            out = eng(np.ascontiguousarray(np.asarray(im)[:, :, ::-1]))
            return list(out.txts or [])

        return run
    if name == "rapidocr-onnxruntime":
        import numpy as np
        from rapidocr_onnxruntime import RapidOCR as RapidOCR14

        eng14 = RapidOCR14()

        def run14(im: Image.Image) -> list[str]:
            result, _ = eng14(np.ascontiguousarray(np.asarray(im)[:, :, ::-1]))
            return [r[1] for r in (result or [])]

        return run14
    if name == "tesseract":
        import pytesseract

        langs = pytesseract.get_languages(config="")
        lang = "+".join(x for x in ("eng", "chi_sim") if x in langs)
        if "eng" not in langs:
            raise ImportError(f"tesseract has no English data (languages: {langs})")

        def run_t(im: Image.Image) -> list[str]:
            d = pytesseract.image_to_data(im, lang=lang, output_type=pytesseract.Output.DICT)
            lines: dict[tuple[int, int, int], list[str]] = {}
            for i, w in enumerate(d["text"]):
                if w.strip() and float(d["conf"][i]) >= 50:
                    lines.setdefault((d["block_num"][i], d["par_num"][i], d["line_num"][i]), []).append(w)
            return [" ".join(ws) for ws in lines.values()]

        return run_t
    raise ValueError(f"unknown engine {name!r} (known: {', '.join(ALL_ENGINES)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--club", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "club")
    ap.add_argument("--engines", default=",".join(ALL_ENGINES))
    ap.add_argument("--out", type=Path, default=None, help="per photo and engine: the lines read (JSON lines)")
    ap.add_argument(
        "--photo-side",
        type=int,
        default=0,
        help="scale each photo down to this long side first, like ingest's working copy (thumb_size 512); 0: as stored",
    )
    args = ap.parse_args()

    doc = json.loads(DATA.read_text(encoding="utf-8"))
    photos = doc["photos"]
    for p in photos:
        if p["test"] != is_test(p["post_id"]):
            raise SystemExit(f"{DATA}: photo {p['file']} has test={p['test']}, the split says {is_test(p['post_id'])}")
    images = {}
    for p in photos:
        path = args.club / "images" / p["file"]
        if not path.is_file():
            raise SystemExit(f"{path}: missing (--club points at the club's data: posts.jsonl, images/)")
        with Image.open(path) as im:
            rgb = to_rgb(im)
        if args.photo_side:
            rgb.thumbnail((args.photo_side, args.photo_side), Image.Resampling.LANCZOS)
        images[p["file"]] = rgb
    n_test = sum(p["test"] for p in photos)
    print(
        f"photos: {len(photos)} ({n_test} in test posts), transcribed words: "
        f"{sum(len(words(' '.join(p['lines']))) for p in photos)}"
    )

    rows = []
    out = args.out.open("w", encoding="utf-8") if args.out else None
    for name in [e.strip() for e in args.engines.split(",") if e.strip()]:
        try:
            t0 = time.perf_counter()
            engine = make_engine(name)
            load = time.perf_counter() - t0
        except ImportError as e:
            print(f"{name}: skipped ({e})")
            continue
        per = []
        for p in photos:
            t0 = time.perf_counter()
            lines = engine(images[p["file"]])
            sec = time.perf_counter() - t0
            read, truth = words(" ".join(lines)), words(" ".join(p["lines"]))
            per.append(
                {"test": p["test"], "read": len(read), "truth": len(truth), "hit": match(read, truth), "sec": sec}
            )
            if out:
                out.write(json.dumps({"engine": name, "file": p["file"], "lines": lines}, ensure_ascii=False) + "\n")
        for split in ("test", "all"):
            sel = [r for r in per if split == "all" or r["test"]]
            hit, nt, nr = (sum(r[k] for r in sel) for k in ("hit", "truth", "read"))
            rows.append(
                (
                    name,
                    split,
                    len(sel),
                    hit / nt,
                    sum(r["hit"] / r["truth"] for r in sel) / len(sel),
                    hit / max(nr, 1),
                    sum(r["sec"] for r in sel) / len(sel),
                    load,
                )
            )
        print(f"{name}: done", flush=True)
    if out:
        out.close()

    print("\n| engine | photos | word recall | macro R | word precision | s/photo | load s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, split, n, rec, mrec, prec, sec, load in rows:
        print(f"| {name} | {split} ({n}) | {rec:.3f} | {mrec:.3f} | {prec:.3f} | {sec:.2f} | {load:.1f} |")


if __name__ == "__main__":
    main()
