"""natural_keys: the device table's name order made in bulk must be exactly natural()'s."""

from __future__ import annotations

import itertools
import random

from poller.inventory import Device
from wardtui.widgets.device_rows import StaticRanks, natural, natural_keys

TRICKY = ["a", "a1", "a01", "a001b", "a1b", "a1c", "A1", "a-1", "a 1", "a1 ", "a10", "a9", "9", "09", "10",
          "", "1a", "a_1", "a~1", "a1.2", "a1.10", "a12345678901234567890", "a12345678901234567889",
          "b", "B2", "b10", "ab", "a/b", "x0", "x00", "x", "z9z9", "z9z10", "z10z1"]


def order_by(keys: list, texts: list[str]) -> list[str]:
    return [t for _, t in sorted(zip(keys, texts, strict=True))]


def check(texts: list[str]) -> None:
    keys = natural_keys(texts)
    assert order_by(keys, texts) == sorted(texts, key=lambda t: (natural(t), t))
    # Equal exactly where natural's are (StaticRanks gives equal values one key and then
    # breaks ties by the name's rank).
    by_text = dict(zip(texts, keys, strict=True))
    for a, b in itertools.combinations(set(texts), 2):
        assert (by_text[a] == by_text[b]) == (natural(a) == natural(b)), (a, b)
        assert (by_text[a] < by_text[b]) == (natural(a) < natural(b)), (a, b)


def test_bulk_keys_order_and_tie_as_natural_does() -> None:
    check(TRICKY)
    rng = random.Random(7)
    alphabet = "aAbZ019 -_.~/"
    check([*{"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8))) for _ in range(600)}])


def test_other_text_falls_back_to_natural() -> None:
    texts = ["é1", "e2", "E10", "٣", "3", "\u0391\u03a31", "a\t1"]  # non-ASCII, Arabic-Indic digit, a tab
    keys = natural_keys(texts)
    assert keys == [natural(t) for t in texts]
    assert natural_keys([]) == []
    assert natural_keys(["a\n1", "b"]) == [natural("a\n1"), natural("b")]  # one key per text


def test_static_ranks_by_name_and_column_as_before() -> None:
    names = ["dev10", "dev9", "Dev2", "dev02", "x1", "a"]
    devices = {n: Device(n, f"127.0.0.{i + 1}", f"b{10 - i}", "r", "t") for i, n in enumerate(names)}
    ranks = StaticRanks(devices)
    expected = sorted(names, key=lambda n: (natural(n), n))
    assert sorted(names, key=ranks.name.__getitem__) == expected
    branch = ranks.column("branch")
    assert sorted(names, key=branch.__getitem__) == sorted(
        names, key=lambda n: (natural(devices[n].branch), ranks.name[n]))
