"""``wardtui status`` of a cluster: poller ids and hostnames are data (a member writes them), so a
hostile one is written out escaped, on its own line, and the JSON keeps it as it is."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from store.fencing import ShardEpoch
from wardtui.cli.status_cluster import ClusterStatus, PollerStatus, _ranges, cluster_record, render_cluster

EVIL = "evil\nservice  fake line\x1b]0;pwned\x07:1:deadbeef"


def _status() -> ClusterStatus:
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    return ClusterStatus(8, [
        PollerStatus(EVIL, "host\x1b[2J", 7, now.isoformat(), True, 3, [0, 1, 2, 5], 0.4,
                     {"takeovers": 4.0, "refused_writes": 1.0},
                     {"up": 2, "down": 1, "unknown": 0, "flapping": 0}),
        PollerStatus("gone:9:cafef00d", None, None, None, False, None, [3, 4]),
    ], unowned=[6, 7])


def test_a_hostile_poller_id_is_escaped_in_the_text_and_kept_in_the_json() -> None:
    rows = render_cluster(_status(), datetime(2026, 12, 6, 12, 5, tzinfo=UTC))
    text = "\n".join(f"{name}  {value}" for name, value in rows)
    assert "\x1b" not in text and "\x07" not in text
    assert len(text.splitlines()) == 3  # the newline in the id made no line of its own
    assert rows[0] == ("cluster", "1 pollers live, 8 shards, 2 unowned; epochs: give --db to read them")
    assert ("shards (0-2,5), lease age 0.4 s, 3 devices: 2 up, 1 down, 0 unknown, takeovers 4, "
            "refused writes 1") in rows[1][1]
    assert rows[2][1].startswith("gone:9:cafef00d: no heartbeat (stopped or silent), still named by leases")
    record = json.loads(json.dumps(cluster_record(_status())))
    assert record["pollers"][0]["id"] == EVIL and record["pollers"][0]["shards_owned"] == 4
    assert record["epochs_read"] is False and record["pollers"][0]["epochs"] is None


def test_epochs_read_from_the_database_are_shown_per_poller() -> None:
    status = _status()
    at = datetime(2026, 12, 6, 11, 0, tzinfo=UTC)
    status.epochs = {s: ShardEpoch("s", s, 3 + s, EVIL if s != 5 else "gone:9:cafef00d", at)
                     for s in range(6)}
    rows = render_cluster(status, datetime(2026, 12, 6, 12, 5, tzinfo=UTC))
    assert rows[0][1] == "1 pollers live, 8 shards, 2 unowned"
    status.lease_ttl_s = 10.0  # as the live members publish it
    assert render_cluster(status, at)[0][1] == "1 pollers live, 8 shards, lease TTL 10 s, 2 unowned"
    assert cluster_record(status)["lease_ttl_s"] == 10.0
    assert ", epochs 3-8," in rows[1][1] and rows[2][1].endswith("epochs 6-7")
    record = cluster_record(status)
    assert record["pollers"][0]["epochs"] == {"0": 3, "1": 4, "2": 5, "5": 8}
    assert record["pollers"][0]["epochs_elsewhere"] == [5]  # its last taker is another poller


def test_shard_ranges() -> None:
    assert _ranges([]) == "none"
    assert _ranges([0, 1, 2, 4, 6, 7]) == "0-2,4,6-7"
    assert _ranges(list(range(0, 60, 2))).endswith(",… 18 more runs")
