"""The shard leases' Lua scripts (registered with redis-py's ``register_script``: ``EVALSHA``,
loaded again if Redis lost them). Each runs as one atomic step in Redis."""

from __future__ import annotations

RENEW = """
-- KEYS: the leases this poller holds; ARGV[1]: its id; ARGV[2]: the TTL in ms.
-- A lease is extended only while it names the poller: 1 renewed, 0 not (gone or another's).
local renewed = {}
for i, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('PEXPIRE', key, ARGV[2])
        renewed[i] = 1
    else
        renewed[i] = 0
    end
end
return renewed
"""

RELEASE = """
-- KEYS: leases to give back; ARGV[1]: the poller's id. Deletes only those naming it.
local released = 0
for _, key in ipairs(KEYS) do
    if redis.call('GET', key) == ARGV[1] then
        redis.call('DEL', key)
        released = released + 1
    end
end
return released
"""

VIEW = """
-- KEYS[1]: the members' sorted set; KEYS[2]: the shard count; KEYS[3]: the lease TTL (ms);
-- KEYS[4..]: every shard's lease. ARGV[1]: the poller's id; ARGV[2]: the member TTL in ms;
-- ARGV[3]: its shard count; ARGV[4]: its lease TTL in ms.
-- The heartbeat, the pruning of silent members, and the site as it is now, in one step:
-- {shard count, 1 if the poller was not a member, live members, each shard's owner or '',
-- lease TTL}. A site that uses another shard count or lease TTL: those, and nothing else done.
local stored = redis.call('GET', KEYS[2])
local ttl = redis.call('GET', KEYS[3])
if (stored and stored ~= ARGV[3]) or (ttl and ttl ~= ARGV[4]) then
    return {stored or ARGV[3], 0, {}, {}, ttl or ARGV[4]}
end
local member_ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', member_ttl * 3)
redis.call('SET', KEYS[3], ARGV[4], 'PX', member_ttl * 3)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now - member_ttl))
redis.call('PEXPIRE', KEYS[1], member_ttl * 3)
local owners = {}
for i = 4, #KEYS do
    owners[i - 3] = redis.call('GET', KEYS[i]) or ''
end
return {ARGV[3], new, redis.call('ZRANGE', KEYS[1], 0, -1), owners, ARGV[4]}
"""
