-- reap: settle active jobs whose lease or execution deadline has passed.
-- include: fail_active, default_retry, make_available, qcount, emit, active_score, mcount
-- KEYS[1] active zset  KEYS[2] event stream  KEYS[3] sequence counter  KEYS[4] dead-letter zset
-- KEYS[5] expiring zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] batch size
-- ARGV[4] job key prefix  ARGV[5] errors key prefix  ARGV[6] available key prefix
-- ARGV[7] delayed key prefix  ARGV[8] error history cap  ARGV[9] jitter factor
-- ARGV[10] retention of discarded jobs (ms)  ARGV[11] retention of dead-lettered jobs (ms)
-- ARGV[12] workflow context (JSON, see server/store/context.py)
-- Pre:  none; at most `batch` entries of the active set are examined.
-- Post: past its execution deadline -> fails with error type "timeout" and
--       follows its retry policy; past its lease -> a "visibility_timeout"
--       error is recorded and the job is available again at once (or ends per
--       on_exhaustion when its attempts are used up); a lease extended since
--       it was scored is re-scored; stale entries are dropped.
-- Returns {entries examined, timed out, requeued}.
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local timed_out, requeued = 0, 0
local wfctx = cjson.decode(ARGV[12])
wfctx.active, wfctx.expiring = KEYS[1], KEYS[5]

local function error_tail(code, error_type, message, extra)
  local entry = {code = code, type = error_type, message = message, retryable = true,
    occurred_at = now}
  for k, v in pairs(extra) do
    entry[k] = v
  end
  return cjson.encode(entry)
end

for _, id in ipairs(due) do
  local job_key = ARGV[4] .. id
  local errors_key = ARGV[5] .. id
  local f = redis.call('HMGET', job_key, 'state', 'lease_expires_at', 'exec_deadline', 'started_at', 'attempt',
    'r_max', 'queue', 'type', 'priority')
  if f[1] ~= 'active' then
    redis.call('ZREM', KEYS[1], id)
  else
    local lease = tonumber(f[2]) or 0
    local exec = tonumber(f[3])
    local failure = {
      job_key = job_key, errors_key = errors_key, id = id, now = ARGV[1], events = KEYS[2], maxlen = ARGV[2],
      dead_key = KEYS[4], delayed_prefix = ARGV[7], history_cap = ARGV[8], jitter = ARGV[9],
      give_up = false, ttl_discarded = ARGV[10], ttl_dead = ARGV[11],
      sequence = KEYS[3], wfctx = wfctx,
    }
    if exec and exec <= now then
      redis.call('ZREM', KEYS[1], id)
      local elapsed = now - (tonumber(f[4]) or now)
      failure.code = 'timeout'
      failure.error_type = 'timeout'
      failure.message = 'execution timeout exceeded'
      failure.error_tail = error_tail('timeout', 'timeout', failure.message,
        {details = {timeout_kind = 'execution', elapsed_ms = elapsed,
                    limit_ms = exec - (tonumber(f[4]) or exec)}})
      fail_active(failure)
      timed_out = timed_out + 1
    elseif lease <= now then
      redis.call('ZREM', KEYS[1], id)
      local attempt = tonumber(f[5]) or 0
      -- Jobs stored without a policy of their own follow the default one (from the context), so a job
      -- that keeps losing its worker ends after max_attempts like a failing one, instead of looping.
      local max_attempts = tonumber(f[6]) or default_retry(wfctx).max_attempts or 0
      failure.code = 'visibility_timeout'
      failure.error_type = 'visibility_timeout'
      failure.message = 'lease expired before the job was acknowledged'
      failure.error_tail = error_tail('visibility_timeout', 'visibility_timeout', failure.message, {})
      if max_attempts > 0 and attempt >= max_attempts then
        failure.give_up = true
        fail_active(failure)
      else
        -- Straight back to its queue: a lost worker is not the job's fault, so no backoff.
        local error_json = '{"attempt":' .. attempt .. ',' .. string.sub(failure.error_tail, 2)
        redis.call('HSET', job_key, 'error', error_json)
        redis.call('RPUSH', errors_key, error_json)
        redis.call('LTRIM', errors_key, -tonumber(ARGV[8]), -1)
        make_available(job_key, id, ARGV[6] .. f[7], KEYS[3], f[9], ARGV[1], wfctx)
        qcount(wfctx, f[7], 'active', 'available', id, ARGV[1])
        mcount(wfctx, f[7], f[8], 'retried')
        emit(KEYS[2], ARGV[2], 'job.requeued', id, f[7], f[8], 'available', ARGV[1],
          {attempt = attempt, reason = 'visibility_timeout'})
      end
      requeued = requeued + 1
    else
      -- A heartbeat moved the lease after this entry was scored.
      redis.call('ZADD', KEYS[1], active_score(f[2], f[3]), id)
    end
  end
end
return {#due, timed_out, requeued}
