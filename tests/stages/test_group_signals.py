import numpy as np
import pytest
from group_fakes import item, two_scenes, unit

from photopoet.config import GroupConfig, load_config
from photopoet.errors import ConfigError, TruthError
from photopoet.evaluation.grouping import baseline_kmeans, evaluate_grouping, load_truth
from photopoet.metrics.clustering import clustering_scores, purity
from photopoet.stages.group import group_photos
from photopoet.stages.understand import apply_faces, calibrate, pick_labels


def scenes(sizes, seed=0, noise=0.05, dim=32):
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        c = unit(rng.normal(size=dim))
        rows += [unit(c + noise * rng.normal(size=dim)) for _ in range(n)]
    return np.stack(rows)


def test_k_is_chosen_by_silhouette_and_curve_is_kept():
    feats = scenes([4, 5, 3, 6])
    g = group_photos([item(f"k{i:02d}") for i in range(18)], feats, GroupConfig(k_choice="silhouette", order_weight=0))
    assert sorted(len(p.photos) for p in g.posts) == [3, 4, 5, 6]
    (curve,) = g.curves
    assert curve["chosen"] == 4 and len(curve["k"]) == len(curve["silhouette"]) >= 3


def test_oversized_scene_is_split_into_coherent_posts():
    # 14 photos: two close sub-scenes (8 + 6) of one scene, far from a third scene of 3
    rng = np.random.default_rng(2)
    base, other = unit(rng.normal(size=32)), unit(rng.normal(size=32))
    a, b = unit(base + 0.4 * rng.normal(size=32)), unit(base + 0.4 * rng.normal(size=32))
    rows = [unit(a + 0.02 * rng.normal(size=32)) for _ in range(8)] + [
        unit(b + 0.02 * rng.normal(size=32)) for _ in range(6)
    ]
    rows += [unit(other + 0.02 * rng.normal(size=32)) for _ in range(3)]
    items = [item(f"o{i:02d}") for i in range(17)]
    posts = group_photos(items, np.stack(rows), GroupConfig(max_photos_per_post=10, max_k_fraction=0.15)).posts
    got = sorted(sorted(int(p[-6:-4]) for p in post.photos) for post in posts)
    assert got == [list(range(8)), list(range(8, 14)), [14, 15, 16]]


def test_timed_oversized_run_keeps_time_order_and_every_photo():
    feats = np.stack([unit(np.ones(8))] * 12)
    times = [f"2024-03-02T10:{m:02d}:00" for m in range(12)]
    posts = group_photos([item(f"r{i:02d}", t) for i, t in enumerate(times)], feats, GroupConfig()).posts
    assert [len(p.photos) for p in posts] == [6, 6]
    assert sorted(posts[0].photos) == [f"/p/r{i:02d}.jpg" for i in range(6)]


def test_time_gap_separates_and_missing_times_still_grouped():
    # six photos of one look (identical features): only the eight hours between 10:0x and 18:0x can split them;
    # three photos of another scene have no capture time and are grouped by content
    scene_b = two_scenes(3, 3, seed=4)[3:]
    feats = np.vstack([np.stack([unit(np.ones(16))] * 6), scene_b])
    times = ["10:00", "10:01", "10:02", "18:00", "18:01", "18:02"]
    items = [item(f"g{i}", f"2024-03-02T{t}:00") for i, t in enumerate(times)] + [item(f"n{i}") for i in range(3)]
    posts = group_photos(items, feats, GroupConfig()).posts
    assert sorted(x for p in posts for x in p.photos) == sorted(u.photo.path for u in items)
    got = sorted(sorted(p.photos) for p in posts)
    assert got == [
        [f"/p/g{i}.jpg" for i in (0, 1, 2)],
        [f"/p/g{i}.jpg" for i in (3, 4, 5)],
        [f"/p/n{i}.jpg" for i in range(3)],
    ]


def test_cover_prefers_the_sharper_half():
    base = unit(np.ones(8))
    rng = np.random.default_rng(1)
    feats = np.stack([base] + [unit(base + 0.1 * rng.normal(size=8)) for _ in range(3)])
    items = [item(f"q{i}") for i in range(4)]
    cfg = GroupConfig(same_scene_distance=1.0)
    assert group_photos(items, feats, cfg).posts[0].cover == "/p/q0.jpg"
    blurry_centre = np.array([0.1, 0.9, 0.8, 0.7])
    assert group_photos(items, feats, cfg, quality=blurry_centre).posts[0].cover != "/p/q0.jpg"


def test_label_fusion_groups_what_content_alone_cannot_and_stays_deterministic():
    # nine photos of one look, spread so that content alone cuts every photo apart; their labels say 4 + 4 + 1
    rng = np.random.default_rng(5)
    centre = unit(rng.normal(size=32))
    feats = np.stack([unit(centre + 0.1 * rng.normal(size=32)) for _ in range(9)])
    scores = np.zeros((9, 3))
    scores[:4, 0], scores[4:8, 1], scores[8, 2] = 1.0, 1.0, 1.0
    scores += 0.05 * rng.normal(size=(9, 3))
    items = [item(f"f{i}") for i in range(9)]
    cfg = GroupConfig(label_weight=2.0, singletons="merge", order_weight=0)
    a = group_photos(items, feats, cfg, label_scores=scores)
    got = sorted(sorted(p.photos) for p in a.posts)
    assert got == [[f"/p/f{i}.jpg" for i in range(4)], [f"/p/f{i}.jpg" for i in range(4, 8)], ["/p/f8.jpg"]]
    b = group_photos(items, feats.copy(), cfg, label_scores=scores.copy())
    assert [p.to_json() for p in a.posts] == [p.to_json() for p in b.posts]
    off = group_photos(items, feats, cfg.model_copy(update={"label_weight": 0.0}), label_scores=scores)
    assert len(off.posts) == 9  # without the labels nothing joins: they did the grouping above


def test_clustering_scores_and_purity():
    assert purity([0, 0, 1, 1], [5, 5, 5, 7]) == 0.75
    s = clustering_scores([0, 0, 1, 1], [1, 1, 0, 0])
    assert s["ari"] == pytest.approx(1.0) and s["nmi"] == pytest.approx(1.0) and np.isnan(s["silhouette"])
    with pytest.raises(ValueError):
        clustering_scores([0, 1], [0])


def test_evaluation_beats_baseline_on_clear_scenes():
    sizes = [3, 5, 4, 2, 6, 3, 4, 5]
    feats = scenes(sizes, seed=7)
    truth = [i for i, n in enumerate(sizes) for _ in range(n)]
    # content alone: with file order on, clear scenes of 2-6 photos that sit next to each other in file order
    # merge at the club-tuned cut (club posts differ little in content; docs/grouping.md)
    cfg = load_config(overrides={"group": {"order_weight": 0.0}})
    ev = evaluate_grouping([item(f"e{i:02d}") for i in range(len(truth))], feats, truth, cfg)
    assert ev.ours["ari"] == pytest.approx(1.0) and ev.baseline["ari"] < 0.9
    assert len(set(baseline_kmeans(feats).tolist())) == round((len(truth) / 2) ** 0.5)


def test_truth_file_errors(tmp_path):
    p = tmp_path / "posts.jsonl"
    p.write_text('{"images": ["a.jpg"]}\n{"images": "b.jpg"}\n')
    with pytest.raises(TruthError, match=r"posts.jsonl:2"):
        load_truth(p)
    with pytest.raises(TruthError, match="cannot read"):
        load_truth(tmp_path / "missing.jsonl")


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ("stage, food", "must be a list of labels"),
        (["stage", ""], "label 1 is empty"),
        (["Stage", "stage"], "listed twice"),
        (["stage", 3], "label 1 must be text"),
        (["x" * 81], "longer than 80"),
    ],
)
def test_label_list_errors_name_the_key(tmp_path, labels, match):
    import yaml

    f = tmp_path / "my.yaml"
    f.write_text(yaml.safe_dump({"understand": {"labels": labels}}))
    with pytest.raises(ConfigError, match=match) as e:
        load_config(f)
    assert str(e.value).startswith(f"{f}: understand.labels")


def test_label_prompt_needs_slot():
    with pytest.raises(ConfigError, match="understand.prompt"):
        load_config(overrides={"understand": {"prompt": "a photo of"}})
    assert load_config(overrides={"understand": {"labels": ["  group   photo "]}}).understand.labels == ["group photo"]


def test_calibration_puts_labels_on_one_scale():
    rng = np.random.default_rng(0)
    lab = np.stack([unit(rng.normal(size=16)) for _ in range(2)])
    bg = np.stack([unit(rng.normal(size=16)) for _ in range(500)])
    raw_bg = bg @ lab.T + np.array([0.5, 0.0])  # label 0 scores 0.5 higher on everything
    z = calibrate(raw_bg, lab, bg)
    assert abs(z[:, 0].mean() - z[:, 1].mean() - 0.5 / (bg @ lab.T)[:, 0].std()) < 1e-3
    assert abs(calibrate(bg @ lab.T, lab, bg).mean(axis=0)).max() < 1e-4


def test_faces_back_portrait_and_group_photo_and_pick_respects_threshold():
    labels = ["portrait", "group photo", "food"]
    z = np.array([[0.0, 0.0, 1.5], [0.0, 0.0, 0.2]], np.float32)
    boosted = apply_faces(z, labels, np.array([1, 4]), threshold=1.0)
    assert boosted[0, 0] == 2.0 and boosted[1, 1] == 2.0 and boosted[0, 1] == 0.0
    raw = np.array([0.80, 0.81, 0.86])
    got = pick_labels(raw, boosted[0], labels, topk=3, threshold=1.0, boosted=boosted[0] > z[0])
    assert [lab.name for lab in got] == ["portrait", "food"]
    assert pick_labels(raw, z[1], labels, topk=3, threshold=1.0) == []


def test_report_plots_are_png_data_uris():
    from photopoet.stages.plots import report_plots

    curves = [{"n": 10, "k": [2, 3, 4], "silhouette": [0.1, 0.3, 0.2], "chosen": 3}]
    plots = report_plots(curves, ["stage", "food"], np.array([[0.5, 1.2], [2.0, -0.3]]), 1.0)
    assert [p["title"] for p in plots] == ["Choosing the number of posts", "Label scores"]
    assert all(p["uri"].startswith("data:image/png;base64,iVBOR") for p in plots)
    assert report_plots([], [], None, 1.0) == []
