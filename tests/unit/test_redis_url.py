"""poller/redis_url.py: reading redis+sentinel:// URLs, and never showing their password."""

from __future__ import annotations

import pytest

from poller.redis_url import (
    FeedUrlError,
    SentinelRedis,
    SentinelTarget,
    client_for,
    describe_error,
    parse_sentinel_url,
    shown_url,
)
from wardtui.cli.common import UsageError
from wardtui.cli.serve import check_redis_url

SECRET = "pa:ss/w@rd"


@pytest.mark.parametrize("url, target", [
    ("redis+sentinel://10.0.0.5:26379,10.0.0.6,[::1]:26380/wardtui-hq",
     SentinelTarget((("10.0.0.5", 26379), ("10.0.0.6", 26379), ("::1", 26380)), "wardtui-hq")),
    ("redis+sentinel://:s3cret@s1.example:1/mymaster/3",
     SentinelTarget((("s1.example", 1),), "mymaster", 3, None, "s3cret")),
    ("redis+sentinel://ops:p%40ss@s1/svc/",  # quoted, as in redis://; a trailing slash is no db
     SentinelTarget((("s1", 26379),), "svc", 0, "ops", "p@ss")),
    (f"redis+sentinel://:{SECRET}@127.0.0.1:26379/svc",  # unquoted / and @ in the password
     SentinelTarget((("127.0.0.1", 26379),), "svc", 0, None, SECRET)),
])
def test_sentinel_urls_are_read(url: str, target: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == target
    assert check_redis_url(url) == url


@pytest.mark.parametrize("tail, says", [
    ("127.0.0.1:26379", "no service name"),
    ("127.0.0.1:26379/", "no service name"),
    ("127.0.0.1:0/svc", "not a number from 1 to 65535"),
    ("127.0.0.1:x/svc", "not a number from 1 to 65535"),
    ("127.0.0.1:1,/svc", "HOST[:PORT] is empty"),
    ("bad_host!/svc", "is not a Sentinel's HOST[:PORT]"),
    ("[::1/svc", "is not a Sentinel's HOST[:PORT]"),
    ("h1/svc/x", "only a database number"),
    ("h1/svc/1/2", "only a database number"),
    ("h1/svc?ssl=true", "takes no options"),
    ("h1/sv%20c", "is not 1 to 128 letters"),
])
def test_bad_sentinel_urls_say_why_without_the_password(tail: str, says: str) -> None:
    url = f"redis+sentinel://:{SECRET}@{tail}"
    with pytest.raises(FeedUrlError) as parsed:
        parse_sentinel_url(url)
    with pytest.raises(FeedUrlError) as made:
        client_for(url)
    with pytest.raises(UsageError) as checked:
        check_redis_url(url)
    for text in (str(parsed.value), str(made.value), str(checked.value)):
        assert says in text and "redis+sentinel://:***@" in text, text
        assert "ss/w" not in text and SECRET not in text, text
    assert str(made.value).startswith("--redis ")


def test_a_sentinel_client_is_made_without_connecting_and_shown_without_its_password() -> None:
    url = f"redis+sentinel://:{SECRET}@127.0.0.1:1,127.0.0.1:2/svc/2"
    client = client_for(url, timeout=0.5)
    assert isinstance(client, SentinelRedis) and client.sentinels is not None
    assert [s.connection_pool.connection_kwargs["port"] for s in client.sentinels.sentinels] == [1, 2]
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == SECRET and kwargs["db"] == 2 and kwargs["socket_timeout"] == 0.5
    assert shown_url(url) == "redis+sentinel://:***@127.0.0.1:1,127.0.0.1:2/svc/2"
    assert describe_error(RuntimeError(f"AUTH {SECRET} refused\nsecond line"), url) == "AUTH *** refused"


def test_other_schemes_name_every_form() -> None:
    with pytest.raises(FeedUrlError, match=r"redis\+sentinel://"):
        client_for("http://:x@127.0.0.1/")
    with pytest.raises(UsageError, match=r"redis\+sentinel://"):
        check_redis_url("http://:x@127.0.0.1/")
