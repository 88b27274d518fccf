-- fetch: claim up to N jobs across an ordered list of queues.
-- include: promote_due, expire_job, active_score, int_str, qcount, qminute, emit, mqueue_time, script_context
-- KEYS[1] active zset  KEYS[2] event stream  KEYS[3] sequence counter  KEYS[4] expiring zset
-- KEYS[5] worker registry zset  KEYS[6] paused queues hash
-- KEYS[7 + 2i] available zset of queue i, KEYS[8 + 2i] its delayed zset (i from 0)
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] max jobs
-- ARGV[4] worker id or ''  ARGV[5] lease length override (ms) or ''
-- ARGV[6] default lease length (ms)  ARGV[7] errors key prefix  ARGV[8] max due jobs promoted per queue per call
-- ARGV[9] default execution timeout (ms), 0 = none  ARGV[10] retention of discarded jobs (ms)
-- ARGV[11] script context (JSON, see server/store/context.py)  ARGV[12 + i] name of queue i
-- Pre:  none. Due scheduled/retryable jobs of each queue are promoted first,
--       so a fetch never waits for the background promoter.
-- Post: paused queues are skipped; a queue's rate limit (starts per sliding second) and
--       concurrency limit (active jobs) cap what it hands out; a job past its expires_at
--       is discarded instead (never delivered); each claimed job is active with attempt+1,
--       a new lease token, started_at, worker, lease and execution deadlines; the active
--       set is scored by the earlier deadline; job.started emitted per job.
--       A named worker is marked as seen in the registry.
-- Returns an array of {job hash as read, error history, fields written since, id}, in claim order.
local now = tonumber(ARGV[1])
local wanted = tonumber(ARGV[3])
local worker = ARGV[4]
local lease_override = ARGV[5]
local default_lease = tonumber(ARGV[6])
local errors_prefix = ARGV[7]
local promote_limit = tonumber(ARGV[8])
local default_timeout = tonumber(ARGV[9])
local ctx = script_context(ARGV[11])
ctx.active, ctx.expiring = KEYS[1], KEYS[4]
local claimed = {}

-- Returns true when the job was claimed.
local function claim(id)
  local job_key = ctx.job .. id
  -- One read of the whole hash serves both the checks and the reply.
  local flat = redis.call('HGETALL', job_key)
  local h = {}
  for i = 1, #flat, 2 do
    h[flat[i]] = flat[i + 1]
  end
  -- Ids whose job vanished or moved on are stale entries: drop them.
  if h.state ~= 'available' then
    return false
  end
  -- Expiry applies until the job first starts; membership in the expiring set says it still applies.
  if h.expires_at and redis.call('ZREM', KEYS[4], id) == 1 and tonumber(h.expires_at) <= now then
    expire_job(job_key, errors_prefix .. id, id, ARGV[1], KEYS[2], ARGV[2], ctx.available, ctx.delayed, ARGV[10],
      ctx, KEYS[3])
    return false
  end
  local lease = tonumber(lease_override) or tonumber(h.visibility_timeout_ms) or default_lease
  local deadline = int_str(now + lease)
  local timeout = tonumber(h.timeout_ms) or default_timeout
  local attempt = tostring((tonumber(h.attempt) or 0) + 1)
  local token = tostring((tonumber(h.lease_token) or 0) + 1)
  local changes = {'state', 'active', 'started_at', ARGV[1], 'lease_expires_at', deadline, 'worker_id', worker,
    'attempt', attempt, 'lease_token', token}
  local exec_deadline = nil
  if timeout > 0 then
    exec_deadline = int_str(now + timeout)
    changes[#changes + 1] = 'exec_deadline'
    changes[#changes + 1] = exec_deadline
  end
  redis.call('HSET', job_key, unpack(changes))
  redis.call('ZADD', KEYS[1], active_score(deadline, exec_deadline), id)
  qcount(ctx, h.queue, 'available', 'active', id, ARGV[1])
  -- No enqueued_at: the job was available from its creation.
  local waited = now - (tonumber(h.enqueued_at or h.created_at) or now)
  qminute(ctx, h.queue, ARGV[1], 'started', 'wait_ms', waited)
  if attempt == '1' then
    mqueue_time(ctx, h.queue, h.type, waited)
  end
  emit(KEYS[2], ARGV[2], 'job.started', id, h.queue, h.type, 'active', ARGV[1],
    {attempt = tonumber(attempt), worker_id = worker, lease_token = tonumber(token)})
  -- The hash as read plus the fields just written; the caller applies them in order.
  local history = {}
  if h.error then
    history = redis.call('LRANGE', errors_prefix .. id, 0, -1)
  end
  claimed[#claimed + 1] = {flat, history, changes, id}
  return true
end

-- How many jobs the queue's limits let this call start now.
local function allowance(queue, rate_key)
  local allowed = wanted - #claimed
  local limits = redis.call('HMGET', ctx.qconf .. queue, 'max_per_second', 'concurrency')
  local per_second = tonumber(limits[1])
  if per_second then
    redis.call('ZREMRANGEBYSCORE', rate_key, '-inf', now - 1000)
    allowed = math.min(allowed, per_second - redis.call('ZCARD', rate_key))
  end
  local concurrency = tonumber(limits[2])
  if concurrency then
    local active = tonumber(redis.call('HGET', ctx.counts .. queue, 'active')) or 0
    allowed = math.min(allowed, concurrency - active)
  end
  return allowed, per_second ~= nil
end

if worker ~= '' then
  redis.call('ZADD', KEYS[5], ARGV[1], worker)
end
local queue_count = (#KEYS - 6) / 2
for i = 0, queue_count - 1 do
  if #claimed >= wanted then
    break
  end
  local queue = ARGV[12 + i]
  local available_key = KEYS[7 + 2 * i]
  promote_due(ctx, available_key, KEYS[8 + 2 * i], KEYS[3], ARGV[1], promote_limit)
  if redis.call('HEXISTS', KEYS[6], queue) == 0 then
    local rate_key = ctx.rate .. queue
    local allowed, limited = allowance(queue, rate_key)
    local taken = 0
    while taken < allowed do
      local popped = redis.call('ZPOPMIN', available_key, allowed - taken)
      if #popped == 0 then
        break
      end
      for j = 1, #popped, 2 do
        if claim(popped[j]) then
          taken = taken + 1
          if limited then
            redis.call('ZADD', rate_key, ARGV[1], popped[j])
          end
        end
      end
    end
    if limited and taken > 0 then
      redis.call('PEXPIRE', rate_key, 2000)
    end
  end
end
return claimed
