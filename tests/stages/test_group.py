import numpy as np
from group_fakes import item, two_scenes, unit

from photopoet.config import CaptionConfig, GroupConfig
from photopoet.stages.group import group
from photopoet.stages.write.template import hashtags_for, post_labels, template_caption


def test_content_separates_scenes_without_exif():
    feats = two_scenes(3, 4)
    items = [item(f"x{i}") for i in range(7)]
    posts = group(items, feats, GroupConfig())
    got = sorted(sorted(p.photos) for p in posts)
    want = sorted([sorted(f"/p/x{i}.jpg" for i in range(3)), sorted(f"/p/x{i}.jpg" for i in range(3, 7))])
    assert got == want


def test_time_gap_splits_identical_content():
    feats = np.stack([unit(np.ones(8))] * 4)
    times = ["2024-03-02T10:00:00", "2024-03-02T10:05:00", "2024-03-02T14:00:00", "2024-03-02T14:01:00"]
    posts = group([item(f"t{i}", t) for i, t in enumerate(times)], feats, GroupConfig(time_gap_minutes=45))
    assert [sorted(p.photos) for p in posts] == [["/p/t0.jpg", "/p/t1.jpg"], ["/p/t2.jpg", "/p/t3.jpg"]]


def test_identical_timestamps_stay_together():
    feats = np.stack([unit(np.ones(8))] * 3)
    posts = group([item(f"s{i}", "2024-03-02T10:00:00") for i in range(3)], feats, GroupConfig())
    assert len(posts) == 1 and len(posts[0].photos) == 3


def test_oversized_cluster_is_split_not_truncated():
    feats = np.stack([unit(np.ones(8))] * 23)
    items = [item(f"b{i:02d}") for i in range(23)]
    posts = group(items, feats, GroupConfig(max_photos_per_post=10))
    assert sorted(len(p.photos) for p in posts) == [7, 8, 8]
    assert sorted(x for p in posts for x in p.photos) == sorted(i.photo.path for i in items)


def test_single_photo_and_empty():
    posts = group([item("only")], np.stack([unit(np.ones(4))]), GroupConfig())
    assert len(posts) == 1 and posts[0].cover == "/p/only.jpg" and posts[0].photos == ["/p/only.jpg"]
    assert group([], np.zeros((0, 4), np.float32), GroupConfig()) == []


def test_cover_is_most_central_and_first():
    base = unit(np.ones(8))
    rng = np.random.default_rng(1)
    outer = [unit(base + 0.3 * rng.normal(size=8)) for _ in range(4)]
    feats = np.stack([*outer[:2], base, *outer[2:]])
    items = [item(f"c{i}") for i in range(5)]
    (post,) = group(items, feats, GroupConfig(same_scene_distance=1.0))  # one scene: test the cover alone
    assert post.cover == "/p/c2.jpg" and post.photos[0] == "/p/c2.jpg"


def test_grouping_is_deterministic_and_ids_stable():
    feats = two_scenes(5, 5, seed=3)
    items = [item(f"d{i}") for i in range(10)]
    a = group(items, feats, GroupConfig())
    b = group(list(items), feats.copy(), GroupConfig())
    assert [p.to_json() for p in a] == [p.to_json() for p in b]
    assert len({p.id for p in a}) == len(a)


def test_hashtags_dedupe_cap_and_event_tag():
    cfg = CaptionConfig(
        base_hashtags=["#photography", "#PhotoClub"],
        label_hashtags={"stage": ["#live", "#photoclub"], "night": ["night sky"]},
        max_hashtags=4,
    )
    tags = hashtags_for(["stage", "night"], "Techniche 2024", cfg)
    assert tags == ["#photography", "#PhotoClub", "#Techniche2024", "#live"]
    assert hashtags_for(["night"], None, CaptionConfig(base_hashtags=[], label_hashtags={"night": ["night sky"]})) == [
        "#nightsky"
    ]


def test_template_caption_deterministic_and_uses_labels():
    cfg = CaptionConfig(openers=["Highlights from", "Moments from"])
    a = template_caption("03-abcdef", ["stage", "night"], "Techniche", 4, cfg)
    assert a == template_caption("03-abcdef", ["stage", "night"], "Techniche", 4, cfg)
    assert "Techniche: stage, night." in a and a.endswith("Swipe for more ➡️")
    single = template_caption("03-abcdef", [], "Techniche", 1, cfg)
    assert "Swipe" not in single and single.endswith("Techniche.")
    openers = {template_caption(f"{i:02d}-x", [], "E", 1, cfg).split(" E")[0] for i in range(20)}
    assert openers == {"Highlights from", "Moments from"}


def test_post_labels_only_clear_best_labels():
    members = [
        item("l1", labels=[("stage", 0.9), ("night", 0.5)]),
        item("l2", labels=[("night", 0.6), ("food", 0.99)]),
        item("l3", labels=[("stage", 0.7)]),
        item("l4", labels=[("food", 0.8), ("stage", 0.7)]),
    ]
    # stage and food are each the best label of half the photos; night never is
    assert post_labels(members) == ["food", "stage"]
    assert post_labels(members, min_share=0.75) == []
    assert post_labels([item("l5")]) == []


def test_short_session_with_capture_times_is_one_post_despite_content():
    feats = two_scenes(2, 2, seed=5)  # two different subjects ...
    times = ["2024-03-02T10:00:00", "2024-03-02T10:03:00", "2024-03-02T10:06:00", "2024-03-02T10:09:00"]
    posts = group([item(f"m{i}", t) for i, t in enumerate(times)], feats, GroupConfig())
    assert len(posts) == 1  # ... shot in one ten-minute stretch: one moment, one post
    # without capture times the same photos are split by content
    assert len(group([item(f"m{i}") for i in range(4)], feats, GroupConfig())) == 2
