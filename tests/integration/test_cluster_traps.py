"""``wardtui serve --cluster --traps`` as real processes (docs/CLUSTER.md, "Traps"): two members in
the lab's monitor namespace, each with a trap receiver; net-snmp's ``snmptrap`` sends, from a
device's own address in the hosts' namespace, the same v2c linkDown to both members (as a device
configured with every member as a trap destination does). The member polling the device accepts
it; the other drops it as polled elsewhere, and refuses nothing as unknown."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from poller.cluster.shards import shard_of
from tests.integration.postgres import pg_url  # noqa: F401  (the fixture)
from tests.integration.test_cluster_serve import PG_SOCKET, Member, Truth
from tests.integration.test_traps_cli import _need
from tests.lab.netns import Lab
from tests.ports import free_port
from tests.procs.redis import unix_redis
from tests.waiting import wait_until

MONITOR = "10.250.0.1"  # the monitor namespace's end of the veth to the hosts' namespace


@pytest.mark.lab
def test_a_trap_sent_to_every_member_is_accepted_by_the_member_polling_its_device(
        tmp_path: Path, lab: Lab, pg_url: str) -> None:  # noqa: F811
    _need()
    user, name = re.match(r"postgresql\+asyncpg://([^@]+)@[^/]+/(\w+)", pg_url).groups()  # type: ignore[union-attr]
    hosts = lab.healthy(16, start=60)
    inventory = tmp_path / "net.csv"
    inventory.write_text("name,address,branch,region,type,snmp_credential\n"
                         + "".join(f"d{i},{a},branch{i},north,router,lab\n" for i, a in enumerate(hosts)),
                         encoding="utf-8")
    credentials = tmp_path / "credentials.yaml"
    credentials.write_text("lab:\n  version: 2c\n  community: tr4p\n", encoding="utf-8")
    credentials.chmod(0o600)
    ports = [free_port(), free_port()]
    site = f"ct{uuid.uuid4().hex[:8]}"
    with unix_redis(tmp_path) as sock:
        truth = Truth(sock, pg_url, site)
        members = [Member(lab, tmp_path, n, [
            "--inventory", str(inventory), "--credentials", str(credentials),
            "--db", f"postgresql://{user}@/{name}?host={PG_SOCKET}", "--redis", f"unix://{sock}",
            "--site", site, "--lease-ttl", "5", "--interval", "1", "--timeout", "0.3",
            "--traps", f"{MONITOR}:{ports[n]}"]) for n in range(2)]
        try:
            wait_until(lambda: all(m.poller_id for m in members), 60, "a member never joined")
            ids = {m.poller_id for m in members}
            wait_until(lambda: set(truth.owners()) == ids, 60, "the shards were never shared")
            owners = truth.owners()
            by_owner = {m.poller_id: m for m in members}
            device = next(i for i in range(len(hosts))
                          if owners[shard_of(f"branch{i}")] == members[1].poller_id)
            owner, other = members[1], members[0]
            assert by_owner[owners[shard_of(f"branch{device}")]] is owner
            wait_until(lambda: min(m.gauge("cluster_shards_owned") for m in members) > 0, 30,
                       "the members do not poll yet")
            for port in ports:  # a device with both members as its trap destinations
                subprocess.run(["ip", "netns", "exec", lab.h, "snmptrap", "-v", "2c", "-c", "tr4p",
                                f"--clientaddr={hosts[device]}", f"{MONITOR}:{port}", "",
                                "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.3", "i", "3"],
                               check=True, timeout=10, capture_output=True)
            wait_until(lambda: owner.gauge("traps_accepted") == 1, 20,
                       f"the owner did not accept it: {owner.log}")
            wait_until(lambda: other.gauge("traps_polled_elsewhere") == 1, 20,
                       f"the other member did not drop it as polled elsewhere: {other.log}")
            assert other.gauge("traps_accepted") == 0 and owner.gauge("traps_polled_elsewhere") == 0
            for m in members:
                assert m.gauge("traps_refused_unknown_source") == 0
                assert m.gauge("traps_refused_community") == 0
            assert owner.gauge("traps_checks") >= 1  # the owner checked the device at once
            for m in members:
                assert m.stop() == 0, m.log
        finally:
            for m in members:
                m.kill()
    for m in members:
        assert "Traceback" not in m.log, m.log
