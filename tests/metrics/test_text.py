"""BLEU, ROUGE-L and CIDEr against pycocoevalcap on the same token lists; the PTB tokenizer against its jar;
`photopoet eval text` on files with bad lines."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import load_config
from photopoet.metrics import text as tm
from photopoet.stages.write.clean import clean_caption
from photopoet.stages.write.template import template_caption

pytest.importorskip("pycocoevalcap")
from pycocoevalcap.bleu.bleu import Bleu  # noqa: E402
from pycocoevalcap.cider.cider import Cider  # noqa: E402
from pycocoevalcap.rouge.rouge import Rouge  # noqa: E402

CLUB = Path(__file__).resolve().parents[2] / ".." / "shared" / "club" / "posts.jsonl"
HAS_JAVA = shutil.which("java") is not None and tm.find_ptb_jar() is not None
needs_java = pytest.mark.skipif(not HAS_JAVA, reason="needs java and pycocoevalcap's CoreNLP jar")


def w(s: str) -> list[str]:
    return s.split()


def club_posts() -> list[dict]:
    if not CLUB.is_file():
        pytest.skip(f"{CLUB} not found")
    return [json.loads(line) for line in CLUB.read_text(encoding="utf-8").splitlines() if line.strip()]


def coco(preds: list[list[str]], refs: list[list[list[str]]]) -> dict:
    """pycocoevalcap's scores on the same token lists (joined by spaces, as its PTBTokenizer leaves them)."""
    gts = {i: [" ".join(r) for r in rs] for i, rs in enumerate(refs)}
    res = {i: [" ".join(p)] for i, p in enumerate(preds)}
    b, _ = Bleu(4).compute_score(gts, res, verbose=0)
    r, r_per = Rouge().compute_score(gts, res)
    c, c_per = Cider().compute_score(gts, res)
    return {
        **{f"bleu{k + 1}": b[k] for k in range(4)},
        "rougeL": float(r),
        "cider": float(c),
        "rouge_per": list(r_per),
        "cider_per": list(c_per),
    }


def assert_parity(preds: list[list[str]], refs: list[list[list[str]]]) -> dict:
    ours = tm.text_metrics(preds, refs)
    theirs = coco(preds, refs)
    for k in ("bleu1", "bleu2", "bleu3", "bleu4", "rougeL", "cider"):
        assert ours[k] == pytest.approx(theirs[k], abs=1e-6, rel=0), k
    assert tm.rouge_l(preds, refs)[1] == pytest.approx(theirs["rouge_per"], abs=1e-9)
    assert tm.cider(preds, refs)[1] == pytest.approx(theirs["cider_per"], abs=1e-9)
    return ours


def test_club_captions_shuffled_against_caption_and_event() -> None:
    posts = club_posts()
    refs = [[p["caption"].split(), (p.get("event") or "photo").split()] for p in posts]
    preds = [p["caption"].split() for p in posts]
    random.Random(0).shuffle(preds)
    ours = assert_parity(preds, refs)
    assert 0 < ours["bleu4"] < ours["bleu1"] < 1 and ours["cider"] > 0 and ours["n"] == len(posts)
    # the captions themselves score far higher than shuffled ones
    own = assert_parity([r[0] for r in refs], refs)
    assert own["cider"] > 5 * ours["cider"] and own["rougeL"] > 0.9


def test_template_captions_against_cleaned_club_captions() -> None:
    cfg = load_config().caption
    posts = club_posts()
    refs, preds = [], []
    for p in posts:
        ref = clean_caption(p["caption"].replace("\n", " "), max_chars=2000, min_chars=1)
        if not ref:
            continue
        refs.append([ref.lower().split()])
        text = template_caption(p["post_id"], p.get("labels", [])[:3], p.get("event"), len(p["images"]), cfg)
        preds.append(text.lower().split())
    ours = assert_parity(preds, refs)
    assert ours["bleu1"] > 0.0 and ours["cider"] > 0.0


def test_edge_cases_match_pycocoevalcap() -> None:
    cases = [
        # an empty prediction among others
        ([[], w("a cat on a mat")], [[w("a cat sits on the mat")], [w("a cat on a mat")]]),
        # one reference each, prediction longer than the reference (no brevity penalty)
        ([w("the dog runs in the park today")], [[w("a dog runs")]]),
        # repeated n-grams: clipping in BLEU and CIDEr
        ([w("the the the the the the"), w("cat cat dog dog")], [[w("the cat")], [w("cat dog")]]),
        # closest reference length, with a tie (the shorter one wins)
        (
            [w("a b c d e"), w("x y")],
            [[w("a b c"), w("a b c d e f g"), w("a b c d"), w("a b c d e f")], [w("x y z")]],
        ),
        # identical prediction and references
        ([w("a small red boat")] * 3, [[w("a small red boat"), w("a boat")]] * 3),
        # nothing in common
        ([w("alpha beta gamma delta")], [[w("one two three")]]),
    ]
    for preds, refs in cases:
        assert_parity(preds, refs)


def test_random_sentences_with_many_repeats() -> None:
    rng = random.Random(7)
    vocab = w("a the cat dog sat on mat red blue")

    def sent() -> list[str]:
        return [rng.choice(vocab) for _ in range(rng.randint(1, 14))]

    preds = [sent() for _ in range(40)]
    refs = [[sent() for _ in range(rng.randint(1, 5))] for _ in range(40)]
    assert_parity(preds, refs)


def test_known_values_by_hand() -> None:
    # one item, prediction equal to its only reference: every precision is 1 (up to the smoothing constants)
    out = tm.text_metrics([["a", "b", "c", "d"]], [[["a", "b", "c", "d"]]])
    assert out["bleu4"] == pytest.approx(1.0, abs=1e-9) and out["rougeL"] == pytest.approx(1.0)
    # CIDEr of a one-item set is 0: every n-gram is in every reference document, idf log(1/1) = 0
    assert out["cider"] == 0.0
    # ROUGE-L by hand: LCS("a b c d e", "a x c y e") = 3; P = R = 3/5 -> F = 0.6
    assert tm.rouge_l_item(w("a b c d e"), [w("a x c y e")]) == pytest.approx(0.6)
    assert tm.lcs_length("abcbdab", "bdcaba") == 4
    with pytest.raises(ValueError, match="no reference"):
        tm.text_metrics([["a"]], [[]])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        tm.bleu([["a"], ["b"]], [[["a"]]])


@needs_java
def test_ptb_tokenizer_matches_pycocoevalcap_on_club_captions() -> None:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    texts = [p["caption"] for p in club_posts()]
    texts += ['A man\'s "quoted" (bracketed) {braced} text -- with... punctuation; and: 3.5 kg!', "", "Émile’s café"]
    ours = tm.ptb_tokenize(texts)
    theirs = PTBTokenizer().tokenize({i: [{"caption": t}] for i, t in enumerate(texts)})
    assert [" ".join(t) for t in ours] == [theirs[i][0] for i in range(len(texts))]
    # as in pycocoevalcap, brackets survive: -lowerCase turns -LRB- into -lrb-, which its punctuation list misses
    assert ours[-3] == w("a man 's quoted -lrb- bracketed -rrb- -lcb- braced -rcb- text with punctuation and 3.5 kg")
    assert ours[-2] == []


@needs_java
def test_ptb_tokenizer_keeps_one_text_per_line() -> None:
    # a line or paragraph separator inside a caption must not shift the captions after it
    out = tm.ptb_tokenize(["first\u2028line\r\nand more", "second."])
    assert out == [["first", "line", "and", "more"], ["second"]]


def test_ptb_without_java_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tm.shutil, "which", lambda name: None)
    with pytest.raises(tm.TokenizerError, match="needs Java"):
        tm.ptb_tokenize(["a cat"])
    monkeypatch.setenv("PHOTOPOET_PTB_JAR", "/nonexistent/stanford.jar")
    with pytest.raises(tm.TokenizerError, match="pycocoevalcap"):
        tm.ptb_tokenize(["a cat"], java="/usr/bin/java")
    assert tm.whitespace_tokenize(["A cat, sat."]) == [["A", "cat,", "sat."]]
    with pytest.raises(ValueError, match="unknown tokenizer"):
        tm.tokenize(["x"], "spacy")


# ------------------------------------------------------------------------------------------- the command


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_text_command_reports_bad_lines_and_unmatched_ids(tmp_path: Path) -> None:
    posts = club_posts()[:30]
    shuffled = [p["caption"] for p in posts]
    random.Random(1).shuffle(shuffled)
    preds = [{"id": p["post_id"], "text": t} for p, t in zip(posts[:-1], shuffled, strict=False)]
    preds += [{"id": "only-pred", "text": "a lonely caption"}, "{broken json", {"id": 5}, {"text": "no id"}]
    preds += [{"id": posts[0]["post_id"], "text": "a second prediction for the same id"}]
    refs = [{"id": p["post_id"], "refs": [p["caption"], p["event"] or "x"]} for p in posts]
    refs += [{"id": "bad", "refs": []}, [1, 2]]
    pf, rf = write_jsonl(tmp_path / "pred.jsonl", preds), write_jsonl(tmp_path / "ref.jsonl", refs)

    res = CliRunner().invoke(
        app, ["eval", "text", "--pred", str(pf), "--ref", str(rf), "--tokenizer", "none", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) >= {"bleu1", "bleu2", "bleu3", "bleu4", "rougeL", "cider", "n", "tokenizer"}
    assert out["n"] == 29
    assert out["preds_without_ref"] == ["only-pred"] and out["refs_without_pred"] == [posts[-1]["post_id"]]
    assert f"{pf}:31: not JSON" in res.stderr
    assert f"{pf}:32: 'text' must be a string (id 5)" in res.stderr
    assert f"{pf}:33: needs an 'id'" in res.stderr
    assert f"{pf}:34: id {posts[0]['post_id']} already has a prediction" in res.stderr
    assert f"{rf}:31: 'refs' must be a non-empty list" in res.stderr and f"{rf}:32: not a JSON object" in res.stderr
    assert len(out["skipped_lines"]) == 6

    # the same numbers as pycocoevalcap on the 29 matched ids, whitespace tokens
    p_toks = [t.split() for t in shuffled[:29]]
    r_toks = [[p["caption"].split(), (p["event"] or "x").split()] for p in posts[:29]]
    theirs = coco(p_toks, r_toks)
    for k in ("bleu1", "bleu4", "rougeL", "cider"):
        assert out[k] == pytest.approx(theirs[k], abs=1e-6)


def test_eval_text_table_per_item_and_errors(tmp_path: Path) -> None:
    pf = write_jsonl(tmp_path / "p.jsonl", [{"id": 1, "text": "a red boat"}, {"id": 2, "text": "two dogs"}])
    rf = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"id": "1", "refs": ["a red boat on the lake"]},
            {"id": 2, "text": "two dogs play"},
            {"id": 2, "text": "dogs"},
        ],
    )
    per = tmp_path / "out" / "per.jsonl"
    res = CliRunner().invoke(app, ["eval", "text", "-p", str(pf), "-r", str(rf), "-t", "none", "--per-item", str(per)])
    assert res.exit_code == 0, res.output
    assert "| items | bleu1 |" in res.stdout and "| 2 |" in res.stdout
    rows = [json.loads(line) for line in per.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["1", "2"]  # integer and string ids are the same item
    assert rows[0]["rougeL"] == pytest.approx(tm.rouge_l_item(w("a red boat"), [w("a red boat on the lake")]))
    # id 2 has two references (two lines): the best recall is against "dogs"
    assert rows[1]["rougeL"] == pytest.approx(tm.rouge_l_item(["two", "dogs"], [["two", "dogs", "play"], ["dogs"]]))

    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "x", "refs": ["a boat"]}, {"id": "y", "refs": "a boat"}])
    bad = CliRunner().invoke(app, ["eval", "text", "-p", str(pf), "-r", str(other), "-t", "none"])
    assert bad.exit_code == 2 and "no id has both a prediction" in bad.stderr and "'refs' must be" in bad.stderr
    missing = CliRunner().invoke(app, ["eval", "text", "-p", str(tmp_path / "nope.jsonl"), "-r", str(rf)])
    assert missing.exit_code == 2 and "nope.jsonl: no such file" in missing.stderr
    wrong = CliRunner().invoke(app, ["eval", "text", "-p", str(pf), "-r", str(rf), "-t", "spacy"])
    assert wrong.exit_code == 2 and "--tokenizer must be one of ptb, none" in wrong.stderr


@needs_java
def test_eval_text_with_ptb_matches_pycocoevalcap_pipeline(tmp_path: Path) -> None:
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    posts = club_posts()
    shuffled = [p["caption"] for p in posts]
    random.Random(2).shuffle(shuffled)
    pf = write_jsonl(tmp_path / "p.jsonl", [{"id": p["post_id"], "text": t} for p, t in zip(posts, shuffled)])  # noqa: B905
    rf = write_jsonl(tmp_path / "r.jsonl", [{"id": p["post_id"], "refs": [p["caption"]]} for p in posts])
    res = CliRunner().invoke(app, ["eval", "text", "-p", str(pf), "-r", str(rf), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["tokenizer"].startswith("ptb")
    # pycocoevalcap's own pipeline: its tokenizer, then its scorers
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": p["caption"]}] for i, p in enumerate(posts)})
    rs = tok.tokenize({i: [{"caption": t}] for i, t in enumerate(shuffled)})
    b, _ = Bleu(4).compute_score(gts, rs, verbose=0)
    assert [out[f"bleu{k}"] for k in range(1, 5)] == pytest.approx(b, abs=1e-6)
    assert out["rougeL"] == pytest.approx(Rouge().compute_score(gts, rs)[0], abs=1e-6)
    assert out["cider"] == pytest.approx(Cider().compute_score(gts, rs)[0], abs=1e-6)


def test_score_texts_tokenises_predictions_and_references_together() -> None:
    preds = ["A cat, on a mat.", "Two dogs!"]
    refs = [["a cat sits on the mat", "a cat"], ["two dogs play"]]
    out = tm.score_texts(preds, refs, tokenizer="none")
    want = tm.text_metrics([w("A cat, on a mat."), w("Two dogs!")], [[w(r) for r in rs] for rs in refs])
    assert out["tokenizer"] == "none" and all(out[k] == want[k] for k in ("bleu1", "bleu4", "rougeL", "cider"))
    if HAS_JAVA:  # PTB lower-cases and drops the punctuation: "a cat on a mat" is then a subsequence of ref 1
        ptb = tm.score_texts(preds, refs, tokenizer="ptb")
        assert ptb["rougeL"] > out["rougeL"] and ptb["n"] == 2
    with pytest.raises(ValueError, match="2 predictions but 1"):
        tm.score_texts(preds, refs[:1], tokenizer="none")
