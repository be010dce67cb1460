"""The CLI package: every PhotopoetError under a command is one line on stderr and exit 2; options whose values
a config field allows take them from the field's Literal type."""

from typing import get_args

import pytest
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.cli.options import CAPTION_MODES, EXECUTORS, STYLE_METRICS, VLM_METRICS, allowed
from photopoet.config import CaptionConfig, ExecutorConfig, TrainStyleConfig, TrainVLMConfig


def _one_error_line(res, *needles: str) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("photopoet: error: "), lines[0]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_a_missing_photo_folder_is_one_line(runner, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"cache:\n  dir: {tmp_path / 'cache'}\n", encoding="utf-8")
    missing = tmp_path / "nowhere"
    for cmd in (["dedupe", str(missing)], ["group", str(missing)], ["run", str(missing), "-o", str(tmp_path / "o")]):
        _one_error_line(runner.invoke(app, [*cmd, "-c", str(cfg)]), str(missing), "no such folder")


def test_a_bad_config_file_is_one_line_naming_file_and_key(runner, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("caption:\n  max_hashtags: 31\n", encoding="utf-8")
    _one_error_line(runner.invoke(app, ["config", "show", "-c", str(bad)]), str(bad), "caption.max_hashtags")
    _one_error_line(runner.invoke(app, ["dedupe", str(tmp_path), "-c", str(bad)]), str(bad))


def test_bad_inputs_of_eval_and_corpus_commands_are_one_line(runner, tmp_path):
    truth = tmp_path / "posts.jsonl"
    truth.write_text('{"images": "a.jpg"}\n', encoding="utf-8")
    res = runner.invoke(app, ["eval", "grouping", str(tmp_path), "--truth", str(truth)])
    _one_error_line(res, f"{truth}:1", "'images' list")  # TruthError, before any photo is read
    res = runner.invoke(app, ["eval", "text", "--pred", str(tmp_path / "p.jsonl"), "--ref", str(truth), "-t", "none"])
    _one_error_line(res, "p.jsonl", "no such file")  # TextEvalError
    bad_truth = tmp_path / "truth.json"
    bad_truth.write_text("{}", encoding="utf-8")
    _one_error_line(runner.invoke(app, ["eval", "dedupe", str(tmp_path), "-t", str(bad_truth)]), "truth.json")
    res = runner.invoke(app, ["corpus", "index", str(tmp_path / "none.jsonl"), "-o", str(tmp_path / "ix")])
    _one_error_line(res, "none.jsonl")  # CorpusError


def test_other_exceptions_are_not_swallowed(runner, tmp_path, monkeypatch):
    import photopoet.pipeline

    def boom(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(photopoet.pipeline, "dedupe_folder", boom)
    res = runner.invoke(app, ["dedupe", str(tmp_path)])
    assert isinstance(res.exception, ZeroDivisionError) and "photopoet: error" not in res.output


def test_option_values_are_the_config_literals(runner):
    assert EXECUTORS == get_args(ExecutorConfig.model_fields["kind"].annotation) == ("local", "ray")
    assert get_args(CaptionConfig.model_fields["mode"].annotation) == CAPTION_MODES
    assert get_args(TrainStyleConfig.model_fields["metric"].annotation) == STYLE_METRICS
    assert get_args(TrainVLMConfig.model_fields["metric"].annotation) == VLM_METRICS
    with pytest.raises(TypeError, match="not a Literal"):
        allowed(CaptionConfig, "max_hashtags")
    # the commands list and check exactly those values
    res = runner.invoke(app, ["caption", "x.jpg", "--mode", "poem"])
    _one_error_line(res, "--mode must be template, generative or hybrid, got 'poem'")
    res = runner.invoke(app, ["train", "style", "--data", "d", "--images", "i", "-o", "o", "--metric", "cider"])
    _one_error_line(res, "--metric must be one of " + ", ".join(STYLE_METRICS))
    res = runner.invoke(app, ["train", "prefix-vlm", "--data", "d", "--images", "i", "-o", "o", "--metric", "x"])
    _one_error_line(res, "--metric must be one of " + ", ".join(VLM_METRICS))
    help_text = " ".join(runner.invoke(app, ["caption", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "template, generative or hybrid (default: caption.mode)" in help_text


def test_help_of_the_shared_options(runner):
    for cmd in (["dedupe"], ["eval", "grouping"], ["train", "style"], ["data", "triplets"], ["publish"]):
        out = " ".join(runner.invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"}).output.split())
        assert "-c, --config <path> YAML file with the settings to change; defaults fill the rest" in out, cmd
