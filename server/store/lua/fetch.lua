-- fetch: claim up to N jobs across an ordered list of queues.
-- KEYS[1] active zset  KEYS[2] event stream  KEYS[3] sequence counter
-- KEYS[4 + 2i] available zset of queue i, KEYS[5 + 2i] its delayed zset (i from 0)
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] max jobs
-- ARGV[4] worker id or ''  ARGV[5] lease length override (ms) or ''
-- ARGV[6] default lease length (ms)  ARGV[7] job key prefix  ARGV[8] errors key prefix
-- ARGV[9] max due jobs promoted per queue per call
-- Pre:  none. Due scheduled/retryable jobs of each queue are promoted first,
--       so a fetch never waits for the background promoter.
-- Post: each claimed job is active with attempt+1, started_at, worker, lease
--       deadline in the active set; job.started emitted per job.
-- Returns an array of {job hash, error history}, in claim order.
local now = tonumber(ARGV[1])
local wanted = tonumber(ARGV[3])
local worker = ARGV[4]
local lease_override = ARGV[5]
local default_lease = tonumber(ARGV[6])
local job_prefix = ARGV[7]
local errors_prefix = ARGV[8]
local promote_limit = tonumber(ARGV[9])
local claimed = {}

local function promote(available_key, delayed_key)
  local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', ARGV[1], 'LIMIT', 0, promote_limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed_key, id)
    local job_key = job_prefix .. id
    local state = redis.call('HGET', job_key, 'state')
    if state == 'scheduled' or state == 'retryable' then
      local sequence = redis.call('INCR', KEYS[3])
      redis.call('ZADD', available_key, rank_score(redis.call('HGET', job_key, 'priority') or 0, sequence), id)
      redis.call('HSET', job_key, 'state', 'available', 'enqueued_at', ARGV[1])
      redis.call('HDEL', job_key, 'next_attempt_at')
    end
  end
end

local function claim(id)
  local job_key = job_prefix .. id
  local fields = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'visibility_timeout_ms')
  -- Ids whose job vanished or moved on are stale entries: drop them.
  if fields[1] ~= 'available' then
    return
  end
  local lease = tonumber(lease_override) or tonumber(fields[4]) or default_lease
  local deadline = int_str(now + lease)
  local attempt = redis.call('HINCRBY', job_key, 'attempt', 1)
  redis.call('HSET', job_key, 'state', 'active', 'started_at', ARGV[1], 'lease_expires_at', deadline,
    'worker_id', worker)
  redis.call('ZADD', KEYS[1], deadline, id)
  emit(KEYS[2], ARGV[2], 'job.started', id, fields[3], fields[2], 'active', ARGV[1],
    {attempt = attempt, worker_id = worker})
  claimed[#claimed + 1] = read_job(job_key, errors_prefix .. id)
end

local queue_count = (#KEYS - 3) / 2
for i = 0, queue_count - 1 do
  if #claimed >= wanted then
    break
  end
  local available_key = KEYS[4 + 2 * i]
  promote(available_key, KEYS[5 + 2 * i])
  while #claimed < wanted do
    local popped = redis.call('ZPOPMIN', available_key, wanted - #claimed)
    if #popped == 0 then
      break
    end
    for j = 1, #popped, 2 do
      claim(popped[j])
    end
  end
end
return claimed
