-- nack: an active job failed; apply its retry policy.
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] active zset  KEYS[4] event stream
-- KEYS[5] sequence counter  KEYS[6] dead-letter zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id
-- ARGV[4] error JSON object without "attempt" (added here)  ARGV[5] error type
-- ARGV[6] retryable: '0' = never, '' = per policy  ARGV[7] requeue '1'|'0'
-- ARGV[8] worker id or ''  ARGV[9] jitter factor in [0.5, 1.5)
-- ARGV[10] available key prefix  ARGV[11] delayed key prefix  ARGV[12] error history cap
-- ARGV[13] error code  ARGV[14] error message (for the event)
-- Pre:  state = active; worker matches when both are known.
-- Post: requeue -> available now (no failure recorded);
--       else the error is recorded and the job becomes retryable (due after
--       the policy's backoff, in the delayed set) or, when attempts are used
--       up or the error is non-retryable, discarded (dead-lettered if the
--       policy says so). Lease released; job.failed and job.retrying or
--       job.discarded emitted.
-- Returns {'ok', job} | {'not_found'} | {'conflict', state} | {'not_owner', worker}.
local job_key = KEYS[1]
local now = tonumber(ARGV[1])
local id = ARGV[3]
local f = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'worker_id', 'attempt', 'priority',
  'r_max', 'r_init', 'r_coef', 'r_maxi', 'r_jit', 'r_strat', 'r_nre', 'r_exh', 'started_at')
if not f[1] then
  return {'not_found'}
end
if f[1] ~= 'active' then
  return {'conflict', f[1]}
end
if ARGV[8] ~= '' and f[4] and f[4] ~= '' and f[4] ~= ARGV[8] then
  return {'not_owner', f[4]}
end
local job_type, queue = f[2], f[3]
local attempt = tonumber(f[5]) or 0
redis.call('ZREM', KEYS[3], id)
redis.call('HDEL', job_key, 'lease_expires_at')

if ARGV[7] == '1' then
  local sequence = redis.call('INCR', KEYS[5])
  redis.call('ZADD', ARGV[10] .. queue, rank_score(f[6] or 0, sequence), id)
  redis.call('HSET', job_key, 'state', 'available', 'enqueued_at', ARGV[1])
  redis.call('HDEL', job_key, 'next_attempt_at', 'retry_delay_ms')
  emit(KEYS[4], ARGV[2], 'job.requeued', id, queue, job_type, 'available', ARGV[1], {attempt = attempt})
  return {'ok', read_job(job_key, KEYS[2])}
end

local error_json
if ARGV[4] == '{}' then
  error_json = '{"attempt":' .. attempt .. '}'
else
  error_json = '{"attempt":' .. attempt .. ',' .. string.sub(ARGV[4], 2)
end
redis.call('HSET', job_key, 'error', error_json)
redis.call('RPUSH', KEYS[2], error_json)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[12]), -1)

local function non_retryable(error_type)
  if error_type == '' or not f[13] or f[13] == '' then
    return false
  end
  for pattern in string.gmatch(f[13], '[^\n]+') do
    if pattern == error_type then
      return true
    end
    if string.sub(pattern, -2) == '.*' and string.sub(error_type, 1, #pattern - 1) == string.sub(pattern, 1, -2) then
      return true
    end
  end
  return false
end

-- Same formulas as server.domain.retry.backoff_delay_ms.
local function backoff(n)
  local initial = tonumber(f[8]) or 1000
  local coef = tonumber(f[9]) or 2
  local cap = tonumber(f[10]) or 300000
  local strategy = f[12] or 'exponential'
  local raw
  if strategy == 'linear' then
    raw = initial * n
  elseif strategy == 'constant' then
    raw = initial
  elseif strategy == 'polynomial' then
    raw = initial * (n ^ coef)
  else
    raw = initial * (coef ^ (n - 1))
  end
  local delay = math.min(raw, cap)
  if f[11] == '1' then
    delay = math.min(delay * tonumber(ARGV[9]), cap)
  end
  return math.floor(delay)
end

local max_attempts = tonumber(f[7]) or 3
local give_up = ARGV[6] == '0' or non_retryable(ARGV[5])
  or (max_attempts > 0 and attempt >= max_attempts)
local duration = now - (tonumber(f[15]) or now)
emit(KEYS[4], ARGV[2], 'job.failed', id, queue, job_type, give_up and 'discarded' or 'retryable', ARGV[1],
  {attempt = attempt, duration_ms = duration,
   error = {code = ARGV[13], message = ARGV[14], retryable = not give_up}})

if give_up then
  redis.call('HSET', job_key, 'state', 'discarded', 'discarded_at', ARGV[1], 'completed_at', ARGV[1])
  redis.call('HDEL', job_key, 'next_attempt_at', 'retry_delay_ms')
  local dead = f[14] == 'dead_letter'
  if dead then
    redis.call('ZADD', KEYS[6], ARGV[1], id)
  end
  emit(KEYS[4], ARGV[2], 'job.discarded', id, queue, job_type, 'discarded', ARGV[1],
    {total_attempts = attempt, dead_letter = dead})
else
  local delay = backoff(attempt)
  local due = int_str(now + delay)
  redis.call('HSET', job_key, 'state', 'retryable', 'next_attempt_at', due, 'retry_delay_ms', delay)
  redis.call('ZADD', ARGV[11] .. queue, due, id)
  emit(KEYS[4], ARGV[2], 'job.retrying', id, queue, job_type, 'retryable', ARGV[1],
    {attempt = attempt, max_attempts = max_attempts, next_retry_at = tonumber(due), retry_delay_ms = delay})
end
return {'ok', read_job(job_key, KEYS[2])}
