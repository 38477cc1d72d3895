"""The Lua the Redis coordinator runs: each check-and-change is one script, so it is atomic.

Every script touches the keys of ONE account, key or lock (their hash tag), so each runs on Redis
Cluster too. Times come from the server's own ``TIME`` (in milliseconds; a health's ``until`` is in
seconds), never from an instance's clock, so instances whose clocks disagree still
agree on what has expired. Redis 7 replicates a script's effects, not the script, so ``TIME``
inside one is allowed.
"""

from __future__ import annotations

from typing import Final

_NOW_MS: Final = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# The key itself expires with its last lease, so an account nobody uses leaves nothing behind.
_KEEP_KEY: Final = """
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
"""

#: KEYS: the account's lease set, its epoch. ARGV: limit, ttl (ms), lease id, the epoch the caller
#: knew ('' none), retake ('1': a lease of the caller's that the store lost), a new epoch.
#: Returns {granted 0/1, held, epoch, reset 0/1}.
#: The epoch (no expiry) is set by the first take that finds none: a store that lost its data
#: (restarted empty, failed over) has none, so a caller that knew another learns it lost the
#: leases (reset), and refuses new ones until their holders took them again (``retake``: no epoch
#: check). Then the expired leases (an instance that died) are dropped, and this one added if a
#: slot is free. A lease id already present is granted again: a call retried after a lost reply
#: must not take two.
TAKE: Final = (
    _NOW_MS
    + """
local ttl = tonumber(ARGV[2])
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[6]
  redis.call('SET', KEYS[2], epoch)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[5] ~= '1' and ARGV[4] ~= '' and ARGV[4] ~= epoch then
  return {0, redis.call('ZCARD', KEYS[1]), epoch, 1}
end
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then
  local held = redis.call('ZCARD', KEYS[1])
  if held >= tonumber(ARGV[1]) then return {0, held, epoch, 0} end
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
"""
    + _KEEP_KEY
    + """
return {1, redis.call('ZCARD', KEYS[1]), epoch, 0}
"""
)

#: KEYS: the account's lease set. ARGV: ttl (ms), lease id. Returns 1 when renewed, 0 when gone.
#: A lease still in the set holds its slot even past its expiry (nobody took the slot: a take
#: removes expired leases first), so renewing it is safe.
RENEW: Final = (
    _NOW_MS
    + """
local ttl = tonumber(ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[2])
"""
    + _KEEP_KEY
    + """
return 1
"""
)

#: KEYS: the account's lease set. ARGV: lease id, channel, ``freed`` event. Tells the other
#: instances only when a lease was really given back (so a repeated call wakes nobody).
GIVE_BACK: Final = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
"""

#: KEYS: the account's lease set. Returns the leases not yet expired.
HELD: Final = (
    _NOW_MS
    + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""
)

#: KEYS: the account's health record. ARGV: the new health (JSON), reset (1/0), channel, the
#: ``health`` event up to its record. Returns the record in force, ``{"version": n, "health": h}``
#: (JSON). "Extend only", unless ``reset`` (a person, a passing check, a new key) replaces anything:
#:   * a quarantine stays through any rest and any ``ok`` of a success; a quarantine replaces it;
#:   * during a rest, a rest ending no later is ignored (the later ``until`` wins, whole);
#:   * during a rest, ``ok`` ends it unless the upstream asked for it (``upstream_asked``);
#:   * anything replaces an ended rest, an ``ok`` or nothing.
#: What is kept is neither versioned nor published again. Every record, ``ok`` and an ended rest
#: included, stays until replaced (no expiry): a poll that finds the record catches up a missed
#: event, and no key at all means nothing was ever shared (or Redis lost everything). A version is
#: the old one plus one, and never less than the server's time in microseconds (exact in Lua's
#: doubles until the year 2255), so the versions written after an empty Redis restart are still
#: newer than those the instances saw before it (no account changes more than once a microsecond).
SHARE_HEALTH: Final = (
    _NOW_MS
    + """
local new = cjson.decode(ARGV[1])
local raw = redis.call('GET', KEYS[1])
local version = 0
if raw then
  local record = cjson.decode(raw)
  local old = record.health
  version = tonumber(record.version) or 0
  if old and ARGV[2] ~= '1' then
    local resting = old.state == 'cooling' and old['until'] * 1000 > now
    local keep = false
    if old.state == 'quarantined' then
      keep = new.state ~= 'quarantined'
    elseif resting and new.state == 'cooling' then
      keep = old['until'] >= new['until']
    elseif resting and new.state == 'ok' then
      keep = old.upstream_asked == true
    end
    if keep then return raw end
  end
end
version = string.format('%.0f', math.max(version + 1, tonumber(clock[1]) * 1000000 + tonumber(clock[2])))
local record = '{"version":' .. version .. ',"health":' .. ARGV[1] .. '}'
redis.call('SET', KEYS[1], record)
redis.call('PUBLISH', ARGV[3], ARGV[4] .. record .. '}')
return record
"""
)

#: KEYS: the key's revoked flag, its tokens of the day, its log of the last minute's requests.
#: ARGV: rpm (-1: none), tokens per day (-1: none), seconds to midnight UTC, request id.
#: Returns {admitted 0/1, why refused, retry after (ms)}. Checks in order revoked, tokens, rpm;
#: only an admitted request is written in the log (a sliding window: no burst at a minute's edge).
ADMIT: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, 'revoked', 0} end
local tokens = tonumber(ARGV[2])
if tokens >= 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= tokens then
  return {0, 'tokens', tonumber(ARGV[3]) * 1000}
end
local rpm = tonumber(ARGV[1])
if rpm < 0 then return {1, '', 0} end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - 60000)
if redis.call('ZSCORE', KEYS[3], ARGV[4]) then return {1, '', 0} end
if redis.call('ZCARD', KEYS[3]) >= rpm then
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  local wait = 60000
  if oldest[2] then wait = tonumber(oldest[2]) + 60000 - now end
  return {0, 'rpm', wait}
end
redis.call('ZADD', KEYS[3], now, ARGV[4])
redis.call('PEXPIRE', KEYS[3], 60000)
return {1, '', 0}
"""

#: KEYS: the lock. ARGV: the holder's token. Deletes it only if that token still holds it.
UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
