"""The Lua scripts of the Redis bus. Each touches the keys of one partition only.

The fast path of a partition is open while its gate holds the run id of the server that
runs the script: the relay opens it (`REOPEN_GATE`) only once it has published everything
it must, and records that server for the partition. A partition served by another server
since then — Redis restarted, or a replica was promoted that may lack the newest writes —
finds its gate stale (`-2`): the gate closes, and the bus has the relay republish the
recent events before the fast path opens again.
"""

from __future__ import annotations

# Scripts that compare servers start with this: the run id of the server executing them is
# a new one after every restart, and a replica promoted in a failover has its own.
_SERVER_ID = """
local function server_id()
  return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')
end
"""

# Append one outbox row's event to the logs of its recipients in one partition, and publish
# it to the partition's live channel as one fan-out message (see codec).
#
# KEYS: [1] the row's marker, [2] the gate, [3] the deferred set, [4..] the recipients' streams
# ARGV: [1] body, [2] max events, [3] max age ms, [4] channel,
#       [5] '1' when gated (the fast path), [6] row id, [7] marker ttl ms,
#       [8] publish command (PUBLISH, or SPUBLISH on a cluster)
# (a recipient's id is the end of its stream's name)
# Returns 1 appended, 0 already appended (a retry or a second relay), -1 deferred, -2 deferred
# because the gate was opened on another server (see the module docstring).
#
# A log keeps an event while it is among the newest `max events` or younger than `max age`;
# every 32 appends past that many (and a slack) the others are trimmed, and the newest
# trimmed id is remembered in the stream's `dropped` key (its name with `:dropped:` for
# `:events:`). While the oldest event is younger than `max age` the check reads one entry.
# Neither key expires: a log that falls silent still holds its newest `max events` when its
# user comes back, however long after (the contract's promise). Logs written before that
# (which expired two hours after their last event) lose their expiry when trimmed, and when
# their user's socket starts (POSITION); until then the stream always outlives its
# `dropped` key, so a trimmed id never vouches for a log that was collected and begun anew.
APPEND = (
    _SERVER_ID
    + """
-- True when stream id `a` comes before `b` (`b` may be a bare millisecond time).
local function before(a, b)
  local a_ms, a_seq = string.match(a, '^(%d+)-(%d+)$')
  local b_ms, b_seq = string.match(b, '^(%d+)-?(%d*)$')
  a_ms, b_ms = tonumber(a_ms), tonumber(b_ms)
  return a_ms < b_ms or (a_ms == b_ms and tonumber(a_seq) < (tonumber(b_seq) or 0))
end
-- Drop what is both older than `cut_ms` and not among the newest `max_events`, and remember
-- the newest id dropped. Reads the oldest entry alone when nothing is old enough (the usual
-- case), and otherwise only the entries that go and the first one that stays.
local function trim(key, len, max_events, cut_ms)
  if cut_ms <= 0 then return end
  local oldest = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if #oldest == 0 or not before(oldest[1][1], tostring(cut_ms)) then return end
  local excess = len - max_events
  local head = redis.call('XRANGE', key, '-', '+', 'COUNT', excess + 1)
  local cut = head[#head][1]
  if not before(cut, tostring(cut_ms)) then cut = tostring(cut_ms) end
  for i = #head, 1, -1 do
    if before(head[i][1], cut) then
      redis.call('SET', string.gsub(key, ':events:', ':dropped:'), head[i][1])
      redis.call('PERSIST', key)
      redis.call('XTRIM', key, 'MINID', cut)
      return
    end
  end
end
local streams = #KEYS - 3
if ARGV[5] == '1' then
  local gate = redis.call('GET', KEYS[2])
  if not gate then
    redis.call('SADD', KEYS[3], ARGV[6])
    return -1
  end
  if gate ~= server_id() then
    redis.call('DEL', KEYS[2])
    redis.call('SADD', KEYS[3], ARGV[6])
    return -2
  end
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[7]) then
  redis.call('SREM', KEYS[3], ARGV[6])
  return 0
end
local body = ARGV[1]
local max_events = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local parts = {}
for i = 1, streams do
  local key = KEYS[3 + i]
  local id = redis.call('XADD', key, '*', 'b', body)
  parts[i] = string.match(key, ':(%d+)$') .. ':' .. id
  local len = redis.call('XLEN', key)
  if len > max_events + math.max(16, math.floor(max_events / 8)) and len % 32 == 0 then
    trim(key, len, max_events, now_ms - max_age)
  end
end
redis.call(ARGV[8], ARGV[4], table.concat(parts, ',') .. '\\n' .. body)
redis.call('SREM', KEYS[3], ARGV[6])
return 1
"""
)

# Where a socket starts. KEYS: [1] stream, [2] base, [3] dropped.
# ARGV: [1] the client's last event id, or '' for none.
# Returns {1, last_event_id, id1, body1, id2, body2, ...} or {0} when the client's id is not a
# position of this log: neither an entry, nor the newest trimmed id, nor the base given to
# it while the log was empty (and nothing was trimmed since). A log rebuilt after Redis lost
# data has none of a client's old ids, so the client is told to resync instead of silently
# missing what was lost.
POSITION = """
for i = 1, 3 do redis.call('PERSIST', KEYS[i]) end
local after = ARGV[1]
local head = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head_id = false
if #head > 0 then head_id = head[1][1] end
if after == '' then
  if head_id then return {1, head_id} end
  local base = redis.call('GET', KEYS[2])
  if not base then
    base = '0-0'
    redis.call('SET', KEYS[2], base)
  end
  return {1, base}
end
local dropped = redis.call('GET', KEYS[3])
local valid = false
if dropped and dropped == after then
  valid = true
elseif (not dropped) and redis.call('GET', KEYS[2]) == after then
  valid = true
elseif #redis.call('XRANGE', KEYS[1], after, after) > 0 then
  valid = true
end
if not valid then return {0} end
local out = {1, head_id or after}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. after, '+')) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2][2]
end
return out
"""

# Count a socket of this process for a user and return the user's sockets on live processes.
# KEYS: [1] the user's presence hash (process -> sockets), [2] the partition's process leases.
# ARGV: [1] process id, [2] delta, [3] lease ms.
PRESENCE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[2], ARGV[1], now_ms + tonumber(ARGV[3]))
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
local total = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local lease = tonumber(redis.call('HGET', KEYS[2], all[i]) or '0')
  if lease > now_ms then
    total = total + tonumber(all[i + 1])
  else
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return total
"""

# Renew this process's lease in a partition, dropping leases that ended long ago.
# KEYS: [1] the partition's process leases. ARGV: [1] process id, [2] lease ms.
LEASE = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now_ms + tonumber(ARGV[2]))
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < now_ms - 10 * tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
return 1
"""

# Close the fast path of a partition. KEYS: [1] gate, [2] deferred set. ARGV: row ids deferred.
CLOSE_GATE = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
return 1
"""

# The relay's look at a partition's gate. KEYS: [1] gate, [2] the partition's server record.
# ARGV: [1] gate lease ms. Returns {state, run id of this server}: state 1 open (its lease
# renewed), 0 closed, -2 the partition was last confirmed on another server, -3 it was never
# confirmed (a new Redis, or one that lost its data); the gate is closed in both cases.
GATE = (
    _SERVER_ID
    + """
local server = server_id()
local confirmed = redis.call('GET', KEYS[2])
if confirmed ~= server then
  redis.call('DEL', KEYS[1])
  if confirmed then return {-2, server} end
  return {-3, server}
end
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 1 then return {1, server} end
return {0, server}
"""
)

# Open the fast path again unless a deferred row is still not appended, and record the
# server it is opened on. KEYS: [1] gate, [2] deferred set, [3] the server record.
# ARGV: [1] marker prefix, [2] gate lease ms, [3] the run id of the server the relay has
# published everything on. Returns {state, run id}: 1 opened, 0 a deferred row is left,
# -2 this is another server (the partition moved since the relay looked): nothing done.
REOPEN_GATE = (
    _SERVER_ID
    + """
local server = server_id()
if server ~= ARGV[3] then return {-2, server} end
for _, row in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[1] .. row) == 1 then redis.call('SREM', KEYS[2], row) end
end
if redis.call('SCARD', KEYS[2]) > 0 then return {0, server} end
redis.call('SET', KEYS[1], server, 'PX', ARGV[2])
redis.call('SET', KEYS[3], server)
return {1, server}
"""
)
