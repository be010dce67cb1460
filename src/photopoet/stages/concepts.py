"""ImageNet classes in plain words, and only the ones worth saying.

The offline tier sees a photo through an ImageNet-1k classifier. Its class names are jargon in a caption or a
haiku ("missile", "bobsled", "website", "dust jacket", "menu"), and on the photos a club posts (stages, posters,
crowds) its top classes are mostly wrong: on the club's 311 photos the commonest were website (48), stage
(41), dust jacket (22), spotlight, restaurant, microphone, torch, envelope, monitor... and a triceratops at 0.95.
So a class reaches the texts only when

- it is in :data:`PLAIN`, which maps the classes a photo club could really show to the word a person would
  use ("tabby cat" -> "cat", "lakeshore" -> "lake", "space shuttle" -> "rocket"); every other class (screens,
  book covers, envelopes, uniforms, weapons, reptiles, most objects) is never named, and
- the classifier gives it at least ``min_prob`` for that photo.

The ConSE text-space vectors still mix every class; only the words shown to the writers are filtered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 6, "fish"),
    (7, 24, "bird"),  # 21 is ImageNet's kite: the bird of prey
    (80, 100, "bird"),
    (127, 146, "bird"),
    (151, 268, "dog"),
    (281, 285, "cat"),
    (330, 332, "rabbit"),
    (948, 957, "fruit"),
)

_NAMES: dict[str, str] = {
    # landscape and places
    "mountain": "mountains",
    "valley": "valley",
    "volcano": "volcano",
    "cliff": "cliff",
    "promontory": "coast",
    "sandbar": "beach",
    "lakeshore": "lake",
    "coral reef": "reef",
    "geyser": "hot spring",
    "lighthouse": "lighthouse",
    "bell tower": "tower",
    "church": "church",
    "mosque": "mosque",
    "palace": "palace",
    "castle": "castle",
    "monastery": "monastery",
    "stupa": "stupa",
    "fountain": "fountain",
    "suspension bridge": "bridge",
    "viaduct": "bridge",
    "dam": "dam",
    "library": "library",
    "greenhouse": "greenhouse",
    "boathouse": "boathouse",
    "park bench": "bench",
    "tent": "tent",
    # stage and music
    "stage": "stage",
    "spotlight": "stage lights",
    "microphone": "microphone",
    "electric guitar": "guitar",
    "acoustic guitar": "guitar",
    "grand piano": "piano",
    "upright piano": "piano",
    "drum": "drums",
    "violin": "violin",
    "cello": "cello",
    "flute": "flute",
    "saxophone": "saxophone",
    "harmonica": "harmonica",
    "accordion": "accordion",
    "banjo": "banjo",
    "marimba xylophone": "marimba",
    # things people photograph
    "candle": "candles",
    "balloon": "balloons",
    "umbrella": "umbrella",
    "reflex camera": "camera",
    "tripod": "tripod",
    "laptop computer": "laptop",
    "notebook computer": "laptop",
    "academic gown": "graduation",
    "graduation cap": "graduation",
    "teddy bear": "teddy bear",
    "daisy": "flowers",
    "yellow lady's slipper": "flowers",
    "rapeseed": "flowers",
    "vase": "vase",
    # vehicles
    "mountain bike": "bicycle",
    "tandem bicycle": "bicycle",
    "moped": "scooter",
    "motor scooter": "scooter",
    "sports car": "car",
    "convertible": "car",
    "race car": "car",
    "jeep": "jeep",
    "school bus": "bus",
    "minibus": "bus",
    "steam locomotive": "train",
    "electric locomotive": "train",
    "high-speed train": "train",
    "airliner": "plane",
    "space shuttle": "rocket",
    "missile": "rocket",
    "gondola": "boat",
    "schooner": "boat",
    # food and drink
    "espresso": "coffee",
    "coffee mug": "coffee",
    "teapot": "tea",
    "pizza": "pizza",
    "ice cream": "ice cream",
    "cheeseburger": "burger",
    "hot dog": "hot dog",
    "plate": "food",
    "hot pot": "food",
    "burrito": "food",
    "bagel": "bread",
    "baguette": "bread",
    "pretzel": "pretzel",
    "chocolate syrup": "dessert",
    "trifle": "dessert",
    # sport
    "basketball": "basketball",
    "soccer ball": "football",
    "volleyball ball": "volleyball",
    "tennis ball": "tennis",
    "ping-pong ball": "table tennis",
    "rugby ball": "rugby",
    "ski": "skiing",
    "dumbbell": "gym",
    # animals a club meets
    "zebra": "zebra",
    "African bush elephant": "elephant",
    "Asian elephant": "elephant",
    "lion": "lion",
    "tiger": "tiger",
    "leopard": "leopard",
    "brown bear": "bear",
    "giant panda": "panda",
    "ox": "cattle",
    "water buffalo": "buffalo",
    "ram (adult male sheep)": "sheep",
    "monarch butterfly": "butterfly",
    "through arch bridge": "bridge",
    "French horn": "horn",
    "kayak": "kayak",
    "motorboat": "boat",
    "lifeboat": "boat",
    "yawl (boat)": "boat",
    "tea cup": "tea",
    "common sorrel horse": "horse",
    "horse-drawn vehicle": "horse",
    "carousel": "carousel",
    "red admiral butterfly": "butterfly",
    "small white butterfly": "butterfly",
    "sulphur butterfly": "butterfly",
}

MIN_PROB = 0.2  # a class the classifier gives less than this is not said (club photos: median top-1 is 0.26)


def plain_word(class_name: str, index: int | None = None) -> str | None:
    """The plain word for an ImageNet class (by name, or by index for the animal families), or None."""
    if index is not None:
        for lo, hi, word in _RANGES:
            if lo <= index <= hi:
                return word
    return _NAMES.get(class_name)


def plain_concepts(
    pairs: Iterable[Sequence], min_prob: float = MIN_PROB, index_of: dict[str, int] | None = None
) -> tuple[str, ...]:
    """Plain words for a photo's ``(class name, probability)`` pairs, best first, each once; classes below
    ``min_prob`` or without a plain word are left out. ``index_of`` maps class names to ImageNet indices (for
    the dog, cat, bird and fish families)."""
    out: list[str] = []
    for pair in pairs:
        name, prob = str(pair[0]), float(pair[1])
        if prob < min_prob:
            continue
        word = plain_word(name, (index_of or {}).get(name))
        if word is not None and word not in out:
            out.append(word)
    return tuple(out)


@lru_cache(maxsize=1)
def class_index() -> dict[str, int]:
    """ImageNet class name -> index (the first, where two classes share a readable name)."""
    from photopoet.models.offline import imagenet_class_names

    out: dict[str, int] = {}
    for i, n in enumerate(imagenet_class_names()):
        out.setdefault(n, i)
    return out


# ImageNet words that misfire on the photos a club posts (the commonest unmapped top classes on the club's
# photos, and those quoted from photopoet's own output): a generated text naming one of them is describing the
# classifier's mistake, not the photo, unless the post's own words (labels, event, concepts) hold it too.
JARGON: tuple[str, ...] = (
    "missile", "projectile", "bobsled", "bobsleigh", "website", "web site", "dust jacket", "book jacket",
    "menu", "envelope", "comic book", "crossword", "monitor", "television", "scoreboard", "digital clock",
    "abaya", "bridegroom", "prison", "torch", "parachute", "bearskin", "shako", "crutch", "stretcher",
    "garbage truck", "triceratops", "boa constrictor", "hard disk", "solar thermal collector",
    "automated teller machine", "teller machine", "slot machine", "tobacco shop", "barbershop", "barber shop",
    "punching bag", "balance beam", "potter's wheel", "hunting bow", "rickshaw", "sliding door", "lab coat",
    "military uniform", "academic gown", "unicycle", "bubble", "jigsaw puzzle", "packet",
)  # fmt: skip


def jargon_in(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """The :data:`JARGON` terms ``text`` names (whole words, any case) that none of ``allowed`` holds."""
    import re

    low = text.lower()
    ok = " ".join(a.lower() for a in allowed)
    return [j for j in JARGON if re.search(rf"\b{re.escape(j)}s?\b", low) and j not in ok]
