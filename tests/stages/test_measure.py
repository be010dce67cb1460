"""One pass of per-photo measurements: faces detected once give what two detections gave."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data
from sklearn.datasets import load_sample_images

from photopoet.core.cache import Cache
from photopoet.core.images import opencv
from photopoet.stages import faces as face_mod
from photopoet.stages.measure import KINDS, appearance, cache_kinds, measure, measure_photo


def _photos() -> dict[str, Image.Image]:
    out = {n: Image.fromarray(getattr(data, n)()) for n in ("astronaut", "chelsea", "coffee", "rocket", "camera")}
    china, flower = load_sample_images().images
    out["china"], out["flower"] = Image.fromarray(china), Image.fromarray(flower)
    # a crowd of faces: four astronauts in a 2 x 2 grid, at half size
    a = out["astronaut"].resize((256, 256))
    grid = Image.new("RGB", (512, 512))
    for i in range(4):
        grid.paste(a, (256 * (i % 2), 256 * (i // 2)))
    out["grid"] = grid
    return out


def _detect(gray: np.ndarray, neighbours: int, side: int) -> list[tuple[int, int, int, int]]:
    """What detectMultiScale gives with grouping inside it (the old way, one run per setting)."""
    cv2 = opencv()
    face_cc, _ = face_mod.cascades()
    found = face_cc.detectMultiScale(
        cv2.equalizeHist(gray), scaleFactor=1.1, minNeighbors=neighbours, minSize=(side, side)
    )
    return sorted((int(x), int(y), int(w), int(h)) for x, y, w, h in (found if len(found) else []))


@pytest.mark.parametrize("name", list(_photos()))
def test_candidates_grouped_twice_equal_two_detections(name):
    img = _photos()[name]
    img.thumbnail((512, 512))
    gray = np.asarray(img.convert("L"))
    for small in (24, 30):
        cands = face_mod.face_candidates(face_mod.equalized(gray), small)
        for neighbours, side in ((6, small), (10, 80), (10, 40), (3, 60), (6, 100)):
            if side < small:
                continue
            assert sorted(face_mod.group_faces(cands, neighbours, side)) == _detect(gray, neighbours, side)


def test_faces_are_found_where_there_are_faces():
    grid = measure_photo(_photos()["grid"], min_face_px=80)
    assert grid.look[-2] == 4  # loose faces: the four astronauts
    assert grid.signals["faces"] == 0  # strict: each face is under 80 px wide
    one = measure_photo(_photos()["astronaut"], min_face_px=80)
    assert one.look[-2] == 1 and one.signals["faces"] == 1 and one.signals["eyes_closed"] == 0
    assert measure_photo(_photos()["coffee"]).look[-2] == 0


def test_one_pass_fills_both_kinds_and_hides_faces_when_off(tmp_path):
    from photopoet.config import load_config
    from photopoet.stages.ingest import ingest

    for name, im in _photos().items():
        if name in ("astronaut", "grid", "china"):
            im.save(tmp_path / f"{name}.png")
    with Cache(tmp_path / "cache.sqlite3") as cache:
        photos = ingest(tmp_path, load_config().ingest, cache, progress=False).photos
        shas = [p.sha256 for p in photos]
        on = appearance(photos, cache, faces=True, min_face_px=80, progress=False)
        kinds = cache_kinds(80)
        assert set(kinds) == set(KINDS)
        assert len(cache.get_vectors(kinds["look"], shas)) == len(cache.get_json(kinds["signals"], shas)) == 3
        looks, signals = measure(shas, cache, min_face_px=80, progress=False)
        assert all(int(signals[s]["faces"]) <= int(looks[s][-2]) + 1 for s in shas)
        off = appearance(photos, cache, faces=False, min_face_px=80, progress=False)
    assert on.faces.sum() > 0 and off.faces.sum() == 0 and off.face_share.sum() == 0
    np.testing.assert_array_equal(on.colors, off.colors)
    np.testing.assert_array_equal(on.quality, off.quality)


def test_a_working_copy_over_512_px_is_searched_at_each_size():
    """ingest.thumb_size above 512: the loose faces come from the full copy, the strict ones from 512 px."""
    from photopoet.stages.measure import gray_at

    img = _photos()["grid"].resize((900, 900))
    m = measure_photo(img, min_face_px=80)
    full = np.asarray(img.convert("L"))
    side = face_mod.loose_min_side(full.shape)
    assert m.look[-2] == len(_detect(full, 6, side)) == 4
    assert m.signals["faces"] == len(_detect(gray_at(img), 10, 80))
