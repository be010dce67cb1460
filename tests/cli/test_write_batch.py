"""`photopoet caption`, `haiku` and `poem` for several posts in one call: folders, loose files and --posts.

The image and text encoders are the real offline ones; the generator is scripted and counts its calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner
from write_fakes import ScriptedGenerator

from photopoet.cli import app
from photopoet.cli.posts import folder_photos

runner = CliRunner()

HAIKU_OUT = "\ndark roast in a cup\nsteam curls over the white rim\nthe morning begins\n\nPhoto:"


class CountingGenerator(ScriptedGenerator):
    """The scripted generator, counting its calls."""

    def __init__(self, outputs: list[str]):
        super().__init__(outputs)
        self.calls = 0

    def generate(self, prompts, *args, **kwargs):
        self.calls += 1
        return super().generate(prompts, *args, **kwargs)


@pytest.fixture
def gen(monkeypatch: pytest.MonkeyPatch) -> CountingGenerator:
    g = CountingGenerator([HAIKU_OUT])
    monkeypatch.setattr("photopoet.models.create_generator", lambda *a, **k: g)
    return g


@pytest.fixture
def shoots(tmp_path: Path, images) -> tuple[Path, Path]:
    """Two post folders: `cafe` (two photos, a text file and a subfolder to ignore) and `cat` (one photo)."""
    cafe, cat = tmp_path / "cafe", tmp_path / "cat"
    (cafe / "sub").mkdir(parents=True)
    cat.mkdir()
    images["coffee"].save(cafe / "b-coffee.JPG", quality=90)
    images["astronaut"].save(cafe / "a-astronaut.png")
    images["rocket"].save(cafe / "sub" / "rocket.jpg")  # not directly inside: not in the post
    (cafe / "notes.txt").write_text("not a photo", encoding="utf-8")
    images["chelsea"].save(cat / "chelsea.webp", quality=80)
    return cafe, cat


def _lines(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_folder_photos_are_the_images_directly_inside_sorted_by_name(shoots):
    cafe, cat = shoots
    assert [p.name for p in folder_photos(cafe)] == ["a-astronaut.png", "b-coffee.JPG"]
    assert [p.name for p in folder_photos(cat)] == ["chelsea.webp"]


def test_caption_folders_give_one_json_line_per_post(shoots, tmp_path: Path, images):
    cafe, cat = shoots
    loose = tmp_path / "loose.jpg"
    images["coffee"].save(loose, quality=90)
    args = ["caption", str(cafe), str(loose), str(cat), "--mode", "template", "--event", "Cafe Week", "--json"]
    out = _lines(runner.invoke(app, args))
    # in the order given: each folder a post, the loose files one more where the first of them stood
    assert [o["id"] for o in out] == [str(cafe), "loose.jpg", str(cat)]
    for o in out:
        assert set(o) == {"id", "caption", "hashtags", "mode", "score"} and "#CafeWeek" in o["hashtags"]
    assert "Swipe" in out[0]["caption"] and "Swipe" not in out[2]["caption"]  # 2 photos vs 1


def test_caption_several_posts_as_text_have_headers(shoots):
    cafe, cat = shoots
    res = runner.invoke(app, ["caption", str(cafe), str(cat), "--mode", "template", "--labels", "food"])
    assert res.exit_code == 0, res.output
    blocks = res.stdout.rstrip("\n").split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [f"== {cafe} ==", f"== {cat} =="]
    assert all(len(b.splitlines()) == 3 and "#food" in b.splitlines()[2] for b in blocks)
    assert f"{cat}: (template, image-text agreement" in res.stderr


def test_caption_batch_calls_the_generator_once_and_loads_models_once(shoots, gen, monkeypatch):
    import photopoet.models

    made: list[str] = []
    real = photopoet.models.create_image_encoder

    def counting(*a, **k):
        made.append("image")
        return real(*a, **k)

    monkeypatch.setattr("photopoet.models.create_image_encoder", counting)
    gen.outputs = ["A slow morning with coffee and friends."]
    cafe, cat = shoots
    out = _lines(runner.invoke(app, ["caption", str(cafe), str(cat), "--mode", "generative", "--json"]))
    assert [o["id"] for o in out] == [str(cafe), str(cat)]
    assert gen.calls == 1 and len(gen.prompts) == 2
    assert made == ["image"]
    assert all(o["mode"] == "generative" and o["caption"].startswith("A slow morning") for o in out)


def test_haiku_batch_makes_as_many_generator_calls_as_one_post(shoots, gen):
    cafe, cat = shoots
    one = runner.invoke(app, ["haiku", str(cafe), "--json"])
    assert one.exit_code == 0, one.output
    assert set(json.loads(one.stdout)) == {"lines", "score"}  # one folder: today's output (indented, no id)
    calls_for_one = gen.calls
    gen.calls = 0
    two = _lines(runner.invoke(app, ["haiku", str(cafe), str(cat), "--json"]))
    assert gen.calls == calls_for_one
    assert [o["id"] for o in two] == [str(cafe), str(cat)]
    expected = ["dark roast in a cup", "steam curls over the white rim", "the morning begins"]
    assert all(o["lines"] == expected for o in two)


def _posts_file(tmp_path: Path, images) -> Path:
    d = tmp_path / "batch"
    d.mkdir()
    images["coffee"].save(d / "coffee.jpg", quality=90)
    images["chelsea"].save(tmp_path / "chelsea.png")
    (d / "junk.jpg").write_bytes(b"not an image")
    rows = [
        json.dumps({"images": ["coffee.jpg", str(tmp_path / "chelsea.png")]}),  # relative to the file's folder
        "{not json",
        json.dumps({"images": "coffee.jpg"}),
        json.dumps({"id": "broken", "images": ["junk.jpg", "missing.jpg"]}),
        "",
        json.dumps({"id": "cafe", "images": ["coffee.jpg"], "event": "Cafe Week", "labels": ["coffee"]}),
    ]
    f = d / "posts.jsonl"
    f.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return f


def test_posts_file_bad_lines_and_unreadable_posts_are_reported_and_the_rest_written(tmp_path: Path, images):
    f = _posts_file(tmp_path, images)
    res = runner.invoke(app, ["caption", "--posts", str(f), "--mode", "template", "--json"])
    out = _lines(res)
    assert f"{f}:2: not valid JSON" in res.stderr
    assert f'{f}:3: "images" must be a non-empty list of paths; skipped' in res.stderr
    assert "junk.jpg: not a readable image" in res.stderr and "missing.jpg: no such file" in res.stderr
    assert "skipped post broken: none of its photos could be read" in res.stderr
    assert [o["id"] for o in out] == [f"{f}:1", "cafe"]
    assert "Swipe" in out[0]["caption"]  # both photos read, the absolute path and the relative one
    assert "Cafe Week: coffee" in out[1]["caption"] and "#CafeWeek" in out[1]["hashtags"]  # its event, labels


def test_no_usable_post_fails_with_one_line(tmp_path: Path, images):
    f = _posts_file(tmp_path, images)
    bad = f.with_name("bad.jsonl")
    bad.write_text("{oops\n", encoding="utf-8")
    res = runner.invoke(app, ["caption", "--posts", str(bad), "--mode", "template"])
    assert res.exit_code == 2 and f"photopoet: error: {bad}: no usable post" in res.stderr
    unreadable = f.with_name("unreadable.jsonl")
    unreadable.write_text('{"images": ["junk.jpg"]}\n{"images": ["nope.jpg"]}\n', encoding="utf-8")
    res = runner.invoke(app, ["haiku", "--posts", str(unreadable)])
    assert res.exit_code == 2 and "no post with a readable photo among the 2 given" in res.stderr
    assert f"skipped post {unreadable}:1" in res.stderr and f"skipped post {unreadable}:2" in res.stderr
    res = runner.invoke(app, ["haiku"])
    assert res.exit_code == 2 and "give photo files or folders, or --posts" in res.stderr


# ------------------------------------------------------------------------------------------------ poem


@pytest.fixture(scope="module")
def poem_index(tmp_path_factory) -> Path:
    from poem_fakes import POEMS, write_jsonl

    from photopoet.config import load_config
    from photopoet.models import create_text_encoder
    from photopoet.poetry.corpus import load_jsonl
    from photopoet.poetry.index import build_index

    enc = create_text_encoder(load_config().models, tmp_path_factory.mktemp("cache"))
    poems = load_jsonl(write_jsonl(tmp_path_factory.mktemp("corpus") / "poems.jsonl", POEMS)).poems
    out = tmp_path_factory.mktemp("ix") / "tiny"
    build_index(poems, out, enc, chunk_size=4, progress=False)
    return out


def test_poem_several_posts_in_one_writer_call(shoots, poem_index, tmp_path: Path, images, monkeypatch):
    from photopoet.poetry.select import PoemWriter

    calls: list[int] = []
    real = PoemWriter.write_many

    def counting(self, queries):
        calls.append(len(queries))
        return real(self, queries)

    monkeypatch.setattr(PoemWriter, "write_many", counting)
    cafe, cat = shoots
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cache:\n  dir: {tmp_path / 'cache'}\npoem:\n  fallback: best\n", encoding="utf-8")
    f = _posts_file(tmp_path, images)
    args = ["poem", str(cafe), str(cat), "--posts", str(f), "--index", str(poem_index), "--config", str(cfg)]
    res = runner.invoke(app, [*args, "--json"])
    out = _lines(res)
    assert calls == [4]  # two folders and two usable lines, in one call
    assert [o["id"] for o in out] == [str(cafe), str(cat), f"{f}:1", "cafe"]
    assert all(o["text"] and o["generated"] is False for o in out)
    assert "skipped post broken" in res.stderr and f"{f}:2: not valid JSON" in res.stderr
    text = runner.invoke(app, ["poem", str(cafe), str(cat), "--index", str(poem_index), "--config", str(cfg)])
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(f"== {cafe} ==\n") and f"\n\n== {cat} ==\n" in text.stdout
