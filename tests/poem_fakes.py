"""The tiny poem corpus shared by the poetry tests (their fixtures: tests/poetry/conftest.py)."""

import json
from pathlib import Path

# A tiny corpus: three poems in traditional characters (as the Tang collection is), three in simplified.
POEMS = [
    {
        "id": "jys",
        "title": "靜夜思",
        "author": "李白",
        "dynasty": "唐",
        "lines": ["床前明月光，疑是地上霜。", "舉頭望明月，低頭思故鄉。"],
    },
    {
        "id": "dgql",
        "title": "登鸛雀樓",
        "author": "王之渙",
        "dynasty": "唐",
        "lines": ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"],
    },
    {
        "id": "cx",
        "title": "春曉",
        "author": "孟浩然",
        "dynasty": "唐",
        "lines": ["春眠不覺曉，處處聞啼鳥。", "夜來風雨聲，花落知多少。"],
    },
    {
        "id": "jx",
        "title": "江雪",
        "author": "柳宗元",
        "dynasty": "唐",
        "lines": ["千山鸟飞绝，万径人踪灭。", "孤舟蓑笠翁，独钓寒江雪。"],
    },
    {
        "id": "cm",
        "title": "咏柳",
        "author": "贺知章",
        "dynasty": "唐",
        "lines": ["碧玉妆成一树高，万条垂下绿丝绦。", "不知细叶谁裁出，二月春风似剪刀。"],
    },
    {
        "id": "mt",
        "title": "饮湖上初晴后雨",
        "author": "苏轼",
        "dynasty": "宋",
        "lines": ["水光潋滟晴方好，山色空蒙雨亦奇。", "欲把西湖比西子，淡妆浓抹总相宜。"],
    },
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows), encoding="utf-8"
    )
    return path
