"""The `ray` executor on a local Ray runtime: the same verdicts and posts as `local`, resumable shards, clear errors."""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from photopoet.cli import app
from photopoet.config import load_config
from photopoet.errors import RunError
from photopoet.executors.shards import read_index, shard_files
from photopoet.pipeline import run

ray = pytest.importorskip("ray", reason="the ray extra is part of `make test` (pip install -e '.[dev]')")


@pytest.fixture(scope="session")
def ray_runtime():
    """One local Ray runtime for every test here (it takes seconds to start)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=512 * 2**20, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Distinct photos, an exact copy, an edited copy, a burst, a blurred shot, a corrupt file and a text file."""
    import skimage.data

    from photopoet.evaluation.dedupe_set import burst_frames

    d = tmp_path_factory.mktemp("rayphotos")
    imgs = {k: Image.fromarray(getattr(skimage.data, k)()).convert("RGB") for k in ("astronaut", "coffee", "rocket")}
    imgs["chelsea"] = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    for name, im in imgs.items():
        im.save(d / f"{name}.jpg", quality=92)
    (d / "copies").mkdir()
    shutil.copy(d / "coffee.jpg", d / "copies" / "coffee-again.jpg")  # the same bytes
    imgs["rocket"].resize((imgs["rocket"].width // 2, imgs["rocket"].height // 2)).save(
        d / "copies" / "rocket-small.jpg", quality=60
    )  # an edited copy
    a, b, _ = burst_frames(imgs["astronaut"], random.Random(3))
    a.save(d / "burst-1.jpg", quality=92)
    b.save(d / "burst-2.jpg", quality=92)
    imgs["chelsea"].filter(ImageFilter.GaussianBlur(6)).save(d / "chelsea-blurred.jpg", quality=92)
    (d / "broken.jpg").write_bytes((d / "coffee.jpg").read_bytes()[:2000])
    (d / "notes.txt").write_text("not a photo", encoding="utf-8")
    return d


_MODELS: list[Path] = []  # the first cache's model files (ConSE class matrix): copied, not re-embedded per cache


def write_cfg(root: Path, name: str, shard_dir: Path | None = None) -> Path:
    p = root / f"{name}.yaml"
    cache = root / ("cache-" + name)
    if _MODELS and not (cache / "models").exists():
        shutil.copytree(_MODELS[0], cache / "models")
    text = (
        f"cache:\n  dir: {root / ('cache-' + name)}\n"
        "caption:\n  event: Ray Week\n  mode: template\nhaiku:\n  enabled: false\npoem:\n  fallback: best\n"
        "executor:\n  cpus_per_worker: 2\n  batch_size: 4\n"
    )
    if shard_dir is not None:
        text += f"  shard_dir: {shard_dir}\n"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def local_run(folder, tmp_path_factory):
    import torch

    torch.set_num_threads(2)  # the thread count the Ray actors use (cpus_per_worker): the same features
    root = tmp_path_factory.mktemp("local")
    res = run(folder, root / "out", load_config(write_cfg(root, "local")), progress=False)
    _MODELS.append(root / "cache-local" / "models")
    return res, json.loads((root / "out" / "posts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ray_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray")


@pytest.fixture(scope="module")
def ray_run(folder, ray_root, ray_runtime, local_run):
    cfg = load_config(write_cfg(ray_root, "first", ray_root / "shards"), {"executor": {"kind": "ray"}})
    res = run(folder, ray_root / "out", cfg, progress=False)
    return res, json.loads((ray_root / "out" / "posts.json").read_text(encoding="utf-8"))


def test_ray_gives_the_same_verdicts_and_posts_as_local(local_run, ray_run):
    (lres, ldoc), (rres, rdoc) = local_run, ray_run
    verdicts = {Path(p["path"]).name: p["verdict"] for p in ldoc["photos"]}
    # the folder exercises every verdict
    assert verdicts["coffee-again.jpg"] == "duplicate" and verdicts["rocket-small.jpg"] == "duplicate"
    assert {verdicts["burst-1.jpg"], verdicts["burst-2.jpg"]} == {"keep", "similar"}
    assert verdicts["chelsea-blurred.jpg"] == "low_quality" and verdicts["chelsea.jpg"] == "keep"
    assert {Path(e["path"]).name for e in ldoc["excluded"]} == {"broken.jpg", "notes.txt"}
    # posts.json as a whole: photos (labels and scores included), verdicts, posts, captions, poems, exclusions
    assert rdoc == ldoc
    # the work was done on Ray: every readable file went there, every distinct content was computed there
    stats = rres.executor
    assert stats is not None and stats.sent == 10 and stats.computed == 8 and stats.imported == 8
    assert rres.decoded == 8 and lres.executor is None


def test_shards_hold_one_row_per_file_keyed_by_content(ray_run, ray_root, folder):
    res, doc = ray_run
    shards = shard_files(res.executor.shard_dir)
    assert len(shards) == 3  # 10 image files in batches of 4
    index = read_index(res.executor.shard_dir)
    assert set(index) == {str(p) for p in folder.rglob("*.jpg")}
    by_name = {Path(p).name: r for p, r in index.items()}
    assert by_name["broken.jpg"].status == "rejected"
    sha = {Path(p["path"]).name: p["sha256"] for p in doc["photos"]}
    assert all(by_name[n].sha == s for n, s in sha.items())
    assert {by_name["coffee.jpg"].status, by_name["coffee-again.jpg"].status} <= {"ok", "ref"}
    assert (res.executor.shard_dir / "settings.json").is_file()


def test_a_rerun_computes_only_what_is_missing(ray_run, ray_root, folder, monkeypatch):
    _, first = ray_run
    # a fresh cache, the same shards: nothing goes to Ray, the posts are the same, and the scenes' statistics
    # come from the shards too
    cfg = load_config(write_cfg(ray_root, "again", ray_root / "shards"), {"executor": {"kind": "ray"}})
    with monkeypatch.context() as m:
        m.setattr("photopoet.stages.scene.measure", lambda *a: (_ for _ in ()).throw(AssertionError("measured")))
        res = run(folder, ray_root / "out-again", cfg, progress=False)
    assert res.executor.sent == 0 and res.executor.imported == 8
    assert all(ph["scene"] for ph in first["photos"])
    assert json.loads((ray_root / "out-again" / "posts.json").read_text(encoding="utf-8")) == first
    # a lost shard (a node that died before writing it): only its photos are computed again
    lost = shard_files(res.executor.shard_dir)[0]
    import pyarrow.parquet as pq

    lost_paths = set(pq.read_table(lost, columns=["path"])["path"].to_pylist())
    lost.unlink()
    cfg = load_config(write_cfg(ray_root, "resume", ray_root / "shards"), {"executor": {"kind": "ray"}})
    res = run(folder, ray_root / "out-resume", cfg, progress=False)
    assert res.executor.sent == len(lost_paths) > 0
    assert json.loads((ray_root / "out-resume" / "posts.json").read_text(encoding="utf-8")) == first


def test_local_cache_is_reused_by_ray(ray_run, ray_root, folder):
    # a second ray run on the first run's cache, no shards: every photo's results are in the cache, so only the
    # corrupt file (which the cache keeps no record of; a local rerun decodes it again too) goes to Ray
    cfg = load_config(write_cfg(ray_root, "first", ray_root / "shards-unused"), {"executor": {"kind": "ray"}})
    res = run(folder, ray_root / "out-cached", cfg, progress=False)
    assert res.executor.sent == 1 and res.executor.computed == 0 and res.executor.imported == 0
    (shard,) = shard_files(res.executor.shard_dir)
    assert read_index(res.executor.shard_dir)[str(folder / "broken.jpg")].status == "rejected"


def test_cli_executor_options_and_errors(ray_root, folder, monkeypatch):
    r = CliRunner().invoke(app, ["run", str(folder), "--out", str(ray_root / "x"), "--executor", "spark"])
    assert r.exit_code == 2 and "--executor: expected 'local' or 'ray'" in r.output
    r = CliRunner().invoke(app, ["run", str(folder), "--out", str(ray_root / "x"), "--ray-address", "auto"])
    assert r.exit_code == 2 and "only used with --executor ray" in r.output
    r = CliRunner().invoke(app, ["run", "--help"])
    assert "--executor" in r.output and "--ray-address" in r.output
    # Ray not installed: a one-line error that says what to install
    monkeypatch.setitem(sys.modules, "ray", None)
    cfg = write_cfg(ray_root, "noray", ray_root / "shards-noray")
    r = CliRunner().invoke(app, ["run", str(folder), "--out", str(ray_root / "y"), "-c", str(cfg), "--executor", "ray"])
    assert r.exit_code == 2
    assert "photopoet: error: executor 'ray' needs Ray Data" in r.output and "photopoet[ray]" in r.output


def test_unreachable_cluster_is_a_clear_error(tmp_path, folder):
    # nothing listens on port 1: a one-line error at once (ray.init alone would retry for minutes)
    cfg = load_config(write_cfg(tmp_path, "far", tmp_path / "shards"), {"executor": {"kind": "ray"}})
    for address in ("127.0.0.1:1", "ray://127.0.0.1:1"):
        cfg.executor.ray_address = address
        with pytest.raises(RunError, match=f"cannot connect to the Ray cluster at '{address}': nothing answers"):
            run(folder, tmp_path / "out", cfg, progress=False)
    cfg.executor.ray_address = "ray://head:port"
    with pytest.raises(RunError, match="is not a number"):
        run(folder, tmp_path / "out", cfg, progress=False)


def test_run_error_for_an_unusable_shard_dir(folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    cfg = load_config(write_cfg(tmp_path, "bad", blocker / "shards"), {"executor": {"kind": "ray"}})
    with pytest.raises(RunError, match="cannot create the shard folder"):
        run(folder, tmp_path / "out", cfg, progress=False)


def test_features_do_not_depend_on_batching():
    # what makes ray and local agree: an image's features are the same in any batch of the model's batch size
    import skimage.data

    from photopoet.models.offline import EfficientNetLite0Encoder

    enc = EfficientNetLite0Encoder(batch_size=4)
    names = ("astronaut", "coffee", "chelsea", "rocket", "camera", "horse")
    x = np.stack([enc.preprocess(Image.fromarray(getattr(skimage.data, k)()).convert("RGB")) for k in names])
    whole = enc.encode(x)
    parts = [enc.encode(x[i : i + 3]) for i in (0, 3)]  # other batch mates, a padded last batch
    assert np.array_equal(whole.features, np.concatenate([p.features for p in parts]))
    assert np.array_equal(whole.probs, np.concatenate([p.probs for p in parts]))


def test_an_actor_keeps_opencv_and_torch_to_its_cpus(ray_runtime, tmp_path):
    """On a node of many cores an actor's OpenCV would otherwise start a thread per core (Ray caps only torch's
    OpenMP), so 16 actors of 2 CPUs on a 32-core node would run 512 face-detection threads."""

    @ray_runtime.remote(num_cpus=1)
    def threads(cfg_data: dict, cache_dir: str) -> tuple[int, int]:
        import cv2
        import torch

        from photopoet.executors.ray_runner import PhotoWorker

        PhotoWorker(cfg_data, cache_dir, cache_dir, frozenset(), np.zeros((1, 384), np.float32))
        return cv2.getNumThreads(), torch.get_num_threads()

    cfg = load_config(None, {"executor": {"cpus_per_worker": 1}, "cache": {"dir": str(tmp_path)}})
    assert ray_runtime.get(threads.remote(cfg.model_dump(mode="json"), str(tmp_path))) == (1, 1)
