from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import Config, default_config_text, load_config
from photopoet.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _keys(node: object, path: str = "") -> set[str]:
    """Every dotted key path in a nested mapping (a key that holds a mapping of user names, such as
    caption.label_hashtags, is one value)."""
    if not isinstance(node, dict) or path.endswith("label_hashtags"):
        return {path}
    out: set[str] = set()
    for k, v in node.items():
        out |= _keys(v, f"{path}.{k}" if path else str(k))
    return out


def test_defaults_file_matches_the_model_defaults_in_every_section_and_field():
    # defaults are written twice: in default_config.yaml (the file users read, with its comments) and in the
    # pydantic fields; every section and field must be in both and hold the same value
    shipped = yaml.safe_load(default_config_text())
    model = Config().model_dump(mode="json")
    assert set(shipped) == set(model)  # sections
    in_yaml, in_model = _keys(shipped), _keys(model)
    assert sorted(in_model - in_yaml) == [], "fields with no line in default_config.yaml"
    assert sorted(in_yaml - in_model) == [], "keys in default_config.yaml that no field reads"
    loaded = load_config().model_dump(mode="json")
    for section in model:
        assert loaded[section] == model[section], section
    assert load_config() == Config()
    assert load_config().understand.labels  # the shipped starter label list


def test_user_file_overrides_only_its_keys(tmp_path):
    cfg = load_config(write(tmp_path, "group:\n  max_photos_per_post: 4\n"))
    assert cfg.group.max_photos_per_post == 4
    assert cfg.group.time_gap_minutes == load_config().group.time_gap_minutes


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        ("group:\n  max_photos_per_pots: 4\n", "group.max_photos_per_pots", "unknown key"),
        ("grup:\n  max_photos_per_post: 4\n", "grup", "unknown key"),
        ("group:\n  max_photos_per_post: 11\n", "group.max_photos_per_post", "less than or equal to 10"),
        ("models:\n  tier: cloud\n", "models.tier", "'offline' or 'hub'"),
        ("ingest:\n  thumb_size: big\n", "ingest.thumb_size", "valid integer"),
        ("understand:\n  labels: [stage, '  ']\n", "understand.labels", "empty"),
        ("understand:\n  labels: [stage, Stage]\n", "understand.labels", "twice"),
        ("caption:\n  max_hashtags: 31\n", "caption.max_hashtags", "30"),
        ("cull:\n  remove: [blurry]\n", "cull.remove.0", "'exact', 'duplicate', 'similar' or 'low_quality'"),
        ("cull:\n  duplicate_alignment: 1.5\n", "cull.duplicate_alignment", "less than or equal to 1"),
        ("cull:\n  min_sharpness: -1\n", "cull.min_sharpness", "greater than or equal to 0"),
        ("cull:\n  similar_alignment: 0.9\n", "cull", "similar_alignment (0.9) must be looser"),
        ("cull:\n  similar_cosine: 0.5\n", "cull", "similar_cosine (0.5) must not be below candidate_cosine"),
        ("cull:\n  weights: {sharpness: 0, exposure: 0, eyes: 0, resolution: 0}\n", "cull.weights", "above 0"),
        ("cull:\n  thresold: 3\n", "cull.thresold", "unknown key"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, key, why):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {key}:"), msg
    assert why in msg


def test_a_bad_option_is_named_as_the_command_line_not_the_file(tmp_path):
    path = write(tmp_path, "caption:\n  max_hashtags: 20\n")
    with pytest.raises(ConfigError) as e:  # the flag's value is wrong, the file is fine
        load_config(path, {"train_style": {"labels": "hashtags"}})
    assert str(e.value).startswith("command line: train_style.labels:"), str(e.value)
    with pytest.raises(ConfigError) as e:  # the file's value is wrong, whatever the flags say
        load_config(write(tmp_path, "caption:\n  max_hashtags: 31\n"), {"train_style": {"labels": "run"}})
    assert str(e.value).startswith(f"{path}: caption.max_hashtags:"), str(e.value)
    res = CliRunner().invoke(app, ["train", "style", "--data", "d", "--images", "i", "--out", "o", "--labels", "x"])
    assert res.exit_code == 2 and "command line: train_style.labels: Input should be 'data' or 'run'" in res.output


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "group: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_empty_file_means_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == load_config()


def test_config_show_prints_resolved_yaml(tmp_path):
    path = write(tmp_path, "caption:\n  event: Techniche 2024\n")
    res = CliRunner().invoke(app, ["config", "show", "--config", str(path)])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert shown["caption"]["event"] == "Techniche 2024"
    assert shown["group"]["max_photos_per_post"] == 10
    # what it prints loads back to the same config
    again = write(tmp_path, res.output)
    assert load_config(again) == load_config(path)


def test_config_show_reports_errors_without_traceback(tmp_path):
    path = write(tmp_path, "models:\n  batch_size: 0\n")
    res = CliRunner().invoke(app, ["config", "show", "--config", str(path)])
    assert res.exit_code == 2
    assert "models.batch_size" in res.output
    assert "Traceback" not in res.output
