-- Counter updates are summed per script call and written once at its end
-- (flush_stats, called by the wrapper every script runs in): a batch of 100
-- jobs costs a few HINCRBYs instead of several per job.
local stat_deltas = {}
local stat_ttls = {}

-- Expire `key` `ttl_ms` after the flush that creates one of its fields (for
-- keys whose counters only grow, such as minute buckets: the expiry is set when
-- the key is created, not rewritten by every later update).
local function keep_for(key, ttl_ms)
  stat_ttls[key] = ttl_ms
end

local function bump(key, field, amount)
  local fields = stat_deltas[key]
  if not fields then
    fields = {}
    stat_deltas[key] = fields
  end
  fields[field] = (fields[field] or 0) + amount
end

-- Enqueue sequence numbers: the first of a script call comes from INCR, the next ones are counted
-- here and added by one INCRBY in flush_stats, so a batch costs two commands, not one per job.
local seq_key, seq_value, seq_extra = nil, 0, 0

local function flush_sequence()
  if seq_extra > 0 then
    redis.call('INCRBY', seq_key, seq_extra)
  end
  seq_key, seq_value, seq_extra = nil, 0, 0
end

local function next_sequence(key)
  if seq_key ~= key then
    flush_sequence()
    seq_key = key
    seq_value = redis.call('INCR', key)
    return seq_value
  end
  seq_value = seq_value + 1
  seq_extra = seq_extra + 1
  return seq_value
end

-- Per-call state starts afresh (see server/store/scripts.py: a function library keeps it between calls).
local function reset_stats()
  stat_deltas, stat_ttls = {}, {}
  seq_key, seq_value, seq_extra = nil, 0, 0
end

local function flush_stats()
  flush_sequence()
  for key, fields in pairs(stat_deltas) do
    local created = false
    for field, amount in pairs(fields) do
      -- Most deltas are 1 or -1: passed as text, Redis need not format a Lua number.
      local text = amount == 1 and '1' or amount == -1 and '-1' or amount
      if amount ~= 0 and redis.call('HINCRBY', key, field, text) == amount then
        created = true
      end
    end
    if created and stat_ttls[key] then
      redis.call('PEXPIRE', key, stat_ttls[key])
    end
  end
  stat_deltas, stat_ttls = {}, {}
end
