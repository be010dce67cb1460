"""The llama.cpp engine on the real packaged Gemma 3 270M GGUF (loads in about a second): what it writes, that
it is reproducible, stops where it is told, reuses prompt prefixes, and falls back when llama.cpp is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photopoet.config import ModelsConfig
from photopoet.models import create_generator, release_generators
from photopoet.models import llama_engine as le
from photopoet.models.base import Generator, stop_at
from photopoet.models.offline import Gemma3LlamaGenerator, ensure_gemma_gguf
from photopoet.stages.write.haiku import haiku_prompt

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gguf(tmp_path_factory) -> Path:
    return ensure_gemma_gguf(tmp_path_factory.mktemp("cache"))


def engine(gguf: Path, **kw) -> le.LlamaCppLM:
    return le.LlamaCppLM("gemma3-270m-q4km@1", gguf, **kw)


@pytest.fixture(scope="module")
def gemma(gguf: Path) -> le.LlamaCppLM:
    return engine(gguf)


def test_it_is_the_real_model_and_a_generator(gemma) -> None:
    assert isinstance(gemma, Generator)
    out = gemma.generate(["The capital of France is", "Roses are red,"], max_new_tokens=8)
    assert len(out) == 2 and all(len(o) == 1 for o in out)
    assert "paris" in out[0][0].lower() or "france" in out[0][0].lower()
    assert "violets" in out[1][0].lower()  # it knows the rhyme: the weights are the real ones
    assert not out[0][0].startswith("The capital")  # the prompt is not echoed
    assert gemma.stats.load_s > 0 and gemma.stats.new_tokens > 0


def test_samples_never_hold_control_or_markup_tokens(gemma) -> None:
    sampled = gemma.generate(["Autumn leaves"], max_new_tokens=24, temperature=1.5, num_return_sequences=6, seed=3)
    assert len(sampled[0]) == 6 and len(set(sampled[0])) > 1
    assert not any("<start_of_image>" in s or "<unused" in s or "<end_of_turn>" in s for s in sampled[0])


def test_a_fresh_engine_writes_the_same_texts(gguf: Path, gemma) -> None:
    """Same calls in the same order -> same texts: a run can be redone (greedy, sampled and beam search)."""
    prompts = [haiku_prompt("a cat on a sofa"), haiku_prompt("a temple at night")]

    def calls(g):
        return [
            g.generate(prompts, max_new_tokens=16),
            g.generate(prompts, max_new_tokens=16, temperature=0.8, num_return_sequences=3, seed=5),
            g.generate(prompts, max_new_tokens=16, num_return_sequences=2),
        ]

    a, b = calls(engine(gguf)), calls(engine(gguf))
    assert a == b
    greedy, sampled, beams = a
    assert all(len(x) == 3 for x in sampled) and all(len(x) == 2 for x in beams)
    assert beams[0][0] != beams[0][1]  # beams are distinct hypotheses
    other_seed = engine(gguf).generate(prompts, max_new_tokens=16, temperature=0.8, num_return_sequences=3, seed=6)
    assert other_seed != sampled


def test_stop_strings_end_the_text_and_the_decoding(gguf: Path) -> None:
    prompt = haiku_prompt("mountains at dawn")
    stops = ("\n\n", "\nPhoto:")
    free, stopped = engine(gguf), engine(gguf)
    full = [free.generate([prompt], max_new_tokens=40, temperature=0.8, seed=s)[0][0] for s in range(4)]
    cut = [stopped.generate([prompt], max_new_tokens=40, temperature=0.8, seed=s, stop=stops)[0][0] for s in range(4)]
    assert not any("\n\n" in t.strip() or "\nPhoto:" in t for t in cut)
    assert any("\n\n" in t.strip() or "\nPhoto:" in t for t in full)  # without stops it would have gone on
    assert stopped.stats.new_tokens < free.stats.new_tokens
    for f, c in zip(full, cut, strict=True):  # one sequence at a time: the same text, cut where a stop starts
        assert c == (stop_at(f, stops) if stop_at(f, stops) is not None else f)


def test_stop_at_skips_leading_whitespace() -> None:
    assert stop_at("\nthe first line\n\nPhoto: x", ("\n\n",)) == "\nthe first line"
    assert stop_at("\n\nlate start", ("\n\n",)) is None
    assert stop_at("no stop here", ("\n",)) is None


def test_stop_at_max_lines_counts_from_the_first_line() -> None:
    text = "\nan old pond\na frog jumps in\nthe sound of water\nPhoto: next"
    assert stop_at(text, (), max_lines=3) == "\nan old pond\na frog jumps in\nthe sound of water"
    assert stop_at(text, (), max_lines=1) == "\nan old pond"
    assert stop_at("\nonly\ntwo lines", (), max_lines=3) is None  # the third line has not ended
    assert stop_at(text, ("frog",), max_lines=3) == "\nan old pond\na "  # whichever comes first
    assert stop_at(text, ()) is None  # 0: no line limit


def test_max_lines_ends_the_decoding_after_that_many_lines(gguf: Path) -> None:
    prompt = haiku_prompt("a lantern by the river at night")
    free, limited = engine(gguf), engine(gguf)
    full = [free.generate([prompt], max_new_tokens=40, temperature=0.8, seed=s)[0][0] for s in range(4)]
    cut = [limited.generate([prompt], max_new_tokens=40, temperature=0.8, seed=s, max_lines=3)[0][0] for s in range(4)]
    assert all(t.strip().count("\n") <= 2 for t in cut)
    assert any(t.strip().count("\n") > 2 for t in full)  # the model goes on past three lines by itself
    assert limited.stats.new_tokens < free.stats.new_tokens
    for f, c in zip(full, cut, strict=True):
        assert c == (stop_at(f, (), 3) if stop_at(f, (), 3) is not None else f)


def test_shared_prompt_prefixes_are_decoded_once(gguf: Path) -> None:
    g = engine(gguf)
    g.generate([haiku_prompt("a cat on a sofa")], max_new_tokens=4)
    first = g.stats.prompt_tokens
    g.generate([haiku_prompt("a red motorcycle on a road")], max_new_tokens=4)
    assert g.stats.reused_tokens > 0.8 * first  # the few-shot header came from the cache
    assert g.stats.prompt_tokens - first < 0.2 * first


def test_many_prompts_longer_than_one_batch(gguf: Path) -> None:
    """Prompts whose tokens together pass one llama_decode call still give each its own continuation."""
    filler = "A long line of words about the weather and the hills and the sea. " * 40
    prompts = [filler + f"Item {i}. Roses are red," for i in range(10)]
    g = engine(gguf, n_ctx=16384)
    assert sum(len(g.tokenize(p)) for p in prompts) > le._N_BATCH
    out = g.generate(prompts, max_new_tokens=4)
    assert len(out) == 10 and all(o[0].strip() for o in out)


def test_a_prompt_too_long_for_the_cache_is_a_clear_error_and_others_still_fit(gguf: Path) -> None:
    g = engine(gguf, n_ctx=256)
    with pytest.raises(RuntimeError, match="does not fit the cache of 256 tokens"):
        g.generate(["word " * 300], max_new_tokens=4)
    # six prompts that cannot share the cache at once are decoded in several groups
    out = g.generate([f"{i} " + "word " * 60 + "Roses are red," for i in range(6)], max_new_tokens=4)
    assert len(out) == 6 and all(o[0].strip() for o in out)


def test_arguments_are_checked(gemma) -> None:
    with pytest.raises(TypeError):
        gemma.generate("one string", max_new_tokens=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        gemma.generate(["x"], max_new_tokens=0)
    with pytest.raises(ValueError, match="sequences"):
        gemma.generate(["x"], max_new_tokens=2, num_return_sequences=17)  # 17 beams need 34 sequences
    assert gemma.generate([], max_new_tokens=2) == []


def test_threads_from_the_free_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(le.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(le, "_others_busy", lambda: 0.1)
    assert le.free_cores() == 4
    monkeypatch.setattr(le, "_others_busy", lambda: 2.0)  # two other busy processes
    assert le.free_cores() == 2
    monkeypatch.setattr(le, "_others_busy", lambda: 40.0)
    assert le.free_cores() == 1
    monkeypatch.setattr(le, "_others_busy", lambda: None)  # no /proc/stat: the load average, less this process
    monkeypatch.setattr(le.os, "getloadavg", lambda: (3.2, 1.0, 1.0))
    assert le.free_cores() == 2


def test_busy_cores_leave_out_this_process_but_not_niced_ones() -> None:
    # ticks at 100 Hz over 1 s on 2 cores: user, nice, system, idle, iowait, irq, softirq, steal
    before = [1000, 500, 300, 9000, 10, 0, 0, 0]
    both_ours = [1000 + 180, 500, 300 + 20, 9000, 10, 0, 0, 0]  # 2 cores busy, all of it this process's 2.0 s
    assert le.busy_cores(before, both_ours, own_s=2.0, wall_s=1.0, hz=100) == pytest.approx(0.0)
    other = [1000 + 100, 500, 300, 9000 + 100, 10, 0, 0, 0]  # one core busy with someone else
    assert le.busy_cores(before, other, own_s=0.0, wall_s=1.0, hz=100) == pytest.approx(1.0)
    niced = [1000, 500 + 100, 300, 9000 + 100, 10, 0, 0, 0]  # a nice 19 job of another session (autogroups)
    assert le.busy_cores(before, niced, own_s=0.0, wall_s=1.0, hz=100) == pytest.approx(1.0)


def test_free_cores_reads_this_machine() -> None:
    n = le.free_cores()
    assert 1 <= n <= len(os.sched_getaffinity(0))
    assert le._others_busy() is not None  # /proc/stat is read on Linux


def test_threads_setting_reaches_the_engine(tmp_path: Path, gguf: Path) -> None:
    g = Gemma3LlamaGenerator(tmp_path, threads=1)
    g._source = gguf
    g.generate(["Hello"], max_new_tokens=2)
    assert g._threads_now == 1


def test_registry_picks_llama_cpp_and_shares_it(tmp_path: Path) -> None:
    release_generators()
    gen = create_generator(ModelsConfig(), tmp_path)
    assert gen.engine == "llama.cpp" and create_generator(ModelsConfig(), tmp_path) is gen
    assert create_generator(ModelsConfig(engine="transformers"), tmp_path).engine == "transformers"
    release_generators()


def test_without_llama_cpp_auto_falls_back_and_llama_cpp_says_why(monkeypatch, tmp_path: Path, caplog) -> None:
    def missing():
        raise le.LlamaCppUnavailable("llama-cpp-python is not usable here (No module named 'llama_cpp')")

    monkeypatch.setattr(le, "load_llama_cpp", missing)
    release_generators()
    with caplog.at_level("WARNING"):
        gen = create_generator(ModelsConfig(), tmp_path)
    assert gen.engine == "transformers" and "generating through transformers" in caplog.text
    with pytest.raises(ValueError, match="models.engine is llama.cpp but llama-cpp-python is not usable"):
        create_generator(ModelsConfig(engine="llama.cpp"), tmp_path / "other")
    release_generators()
