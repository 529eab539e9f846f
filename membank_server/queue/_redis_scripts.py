"""The Lua scripts of :class:`~membank_server.queue.redis.RedisJobQueue`: each change
that spans keys runs whole, or not at all. ``ARGV[1]`` is always the key prefix."""

from __future__ import annotations

__all__ = ["FINISH", "RETRY", "SUBMIT", "UNDELAY"]

#: job, kind, users (JSON), created, total, max items, max per user, n users,
#: (user, count) x n users, (user, payload) x total. Refuses with "QUEUEFULL ...".
SUBMIT = """
local p, job, kind = ARGV[1], ARGV[2], ARGV[3]
local created, total = tonumber(ARGV[5]), tonumber(ARGV[6])
local max_items, max_user, nusers = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local waiting = tonumber(redis.call('GET', p .. 'count:*') or '0')
if waiting + total > max_items then
  return redis.error_reply('QUEUEFULL ' .. waiting .. ' ' .. max_items)
end
local i = 10
for _ = 1, nusers do
  local mine = tonumber(redis.call('GET', p .. 'count:user:' .. ARGV[i]) or '0')
  if mine + tonumber(ARGV[i + 1]) > max_user then
    return redis.error_reply('QUEUEFULL ' .. mine .. ' ' .. max_user .. ' ' .. ARGV[i])
  end
  i = i + 2
end
local jobkey = p .. 'job:' .. job
redis.call('HSET', jobkey, 'kind', kind, 'user_ids', ARGV[4], 'created_at', ARGV[5],
  'updated_at', ARGV[5], 'total', total, 'done', 0, 'dead', 0)
i = 10
for _ = 1, nusers do
  redis.call('INCRBY', p .. 'count:user:' .. ARGV[i], ARGV[i + 1])
  redis.call('ZADD', p .. 'user:' .. ARGV[i] .. ':jobs', created, job)
  i = i + 2
end
redis.call('INCRBY', p .. 'count:*', total)
redis.call('INCRBY', p .. 'count:kind:' .. kind, total)
local stream = p .. 'stream:' .. kind
for idx = 0, total - 1 do
  redis.call('HSET', p .. 'payload:' .. job, idx, ARGV[i + 1])
  redis.call('HSET', p .. 'who:' .. job, idx, ARGV[i])
  redis.call('XADD', stream, '*', 'job', job, 'idx', idx, 'user', ARGV[i])
  i = i + 2
end
return total
"""

#: now, then (job, index, stream entry, state, packed result, ready at, give back) x n.
FINISH = """
local p, now = ARGV[1], ARGV[2]
local i = 3
while i <= #ARGV do
  local job, idx, entry, state = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local result, ready, give_back = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  local jobkey = p .. 'job:' .. job
  local kind = redis.call('HGET', jobkey, 'kind')
  local user = redis.call('HGET', p .. 'who:' .. job, idx)
  local acked = 0
  if kind and user and entry ~= '' then
    acked = redis.call('XACK', p .. 'stream:' .. kind, 'workers', entry)
    redis.call('XDEL', p .. 'stream:' .. kind, entry)
  end
  if kind and user and acked == 1 then
    redis.call('HSET', p .. 'res:' .. job, idx, result)
    if state == 'pending' then
      redis.call('ZADD', p .. 'delayed:' .. kind, ready, job .. '|' .. idx .. '|' .. user)
      if give_back == '1' then redis.call('HINCRBY', p .. 'att:' .. job, idx, -1) end
    else
      redis.call('HINCRBY', jobkey, state, 1)
      redis.call('HSET', jobkey, 'updated_at', now)
      redis.call('DECRBY', p .. 'count:*', 1)
      redis.call('DECRBY', p .. 'count:kind:' .. kind, 1)
      redis.call('DECRBY', p .. 'count:user:' .. user, 1)
      if state == 'done' then
        redis.call('HDEL', p .. 'payload:' .. job, idx)
      else
        redis.call('ZADD', p .. 'dead', now, job .. '|' .. idx)
        redis.call('ZADD', p .. 'dead:user:' .. user, now, job .. '|' .. idx)
        redis.call('SADD', p .. 'deadjob:' .. job, idx)
      end
      local t = redis.call('HMGET', jobkey, 'done', 'dead', 'total')
      if tonumber(t[1]) + tonumber(t[2]) >= tonumber(t[3]) then
        redis.call('HSET', jobkey, 'finished_at', now)
        redis.call('ZADD', p .. 'finished', now, job)
      end
    end
  end
end
return 1
"""

#: job, index (-1: every dead item of the job), now; how many went back.
RETRY = """
local p, job, index, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local jobkey = p .. 'job:' .. job
local kind = redis.call('HGET', jobkey, 'kind')
if not kind then return 0 end
local n = 0
for _, idx in ipairs(redis.call('SMEMBERS', p .. 'deadjob:' .. job)) do
  if index < 0 or tonumber(idx) == index then
    local user = redis.call('HGET', p .. 'who:' .. job, idx)
    redis.call('SREM', p .. 'deadjob:' .. job, idx)
    redis.call('ZREM', p .. 'dead', job .. '|' .. idx)
    redis.call('ZREM', p .. 'dead:user:' .. user, job .. '|' .. idx)
    redis.call('HSET', p .. 'att:' .. job, idx, 0)
    redis.call('HDEL', p .. 'res:' .. job, idx)
    redis.call('XADD', p .. 'stream:' .. kind, '*', 'job', job, 'idx', idx, 'user', user)
    redis.call('INCRBY', p .. 'count:*', 1)
    redis.call('INCRBY', p .. 'count:kind:' .. kind, 1)
    redis.call('INCRBY', p .. 'count:user:' .. user, 1)
    n = n + 1
  end
end
if n > 0 then
  redis.call('HINCRBY', jobkey, 'dead', -n)
  redis.call('HSET', jobkey, 'updated_at', now)
  redis.call('HDEL', jobkey, 'finished_at')
  redis.call('ZREM', p .. 'finished', job)
end
return n
"""

#: kind, now, limit: retries that are due go back into the stream.
UNDELAY = """
local p, kind, now, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = p .. 'delayed:' .. kind
local due = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'LIMIT', 0, limit)
for _, m in ipairs(due) do
  local job, idx, user = string.match(m, '([^|]+)|([^|]+)|(.+)')
  redis.call('XADD', p .. 'stream:' .. kind, '*', 'job', job, 'idx', idx, 'user', user)
  redis.call('ZREM', key, m)
end
return #due
"""
