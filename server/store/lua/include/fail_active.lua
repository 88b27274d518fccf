-- include: int_str, matches_any, retry_delay, default_retry, qcount, qminute, emit, retain, wf_job_done, mcount, mduration
-- Record a failure of an active job and apply its retry policy: retryable
-- after the policy's backoff, or discarded (dead-lettered if the policy says
-- so) when attempts are used up, the error is non-retryable or `give_up`.
-- c: job_key, errors_key, id, now, events, maxlen, dead_key, delayed_prefix,
--    history_cap, jitter, error_tail (error JSON object without "attempt"),
--    error_type, code, message, give_up, ttl_discarded, ttl_dead,
--    sequence (key) and wfctx (the script context: workflow prefixes, default retry policy)
-- Returns the new state.
local function fail_active(c)
  local f = redis.call('HMGET', c.job_key, 'type', 'queue', 'attempt', 'r_max', 'r_init', 'r_coef', 'r_maxi',
    'r_jit', 'r_strat', 'r_nre', 'r_exh', 'started_at')
  local job_type, queue = f[1], f[2]
  local attempt = tonumber(f[3]) or 0
  local now = tonumber(c.now)

  local error_json
  if c.error_tail == '{}' then
    error_json = '{"attempt":' .. attempt .. '}'
  else
    error_json = '{"attempt":' .. attempt .. ',' .. string.sub(c.error_tail, 2)
  end
  redis.call('HSET', c.job_key, 'error', error_json)
  redis.call('RPUSH', c.errors_key, error_json)
  redis.call('LTRIM', c.errors_key, -tonumber(c.history_cap), -1)

  -- A job without its own policy (no r_* fields) has the default one, from the script context.
  local defaults = default_retry(c.wfctx)
  local max_attempts = tonumber(f[4]) or defaults.max_attempts
  local give_up = c.give_up or matches_any(f[10], c.error_type) or (max_attempts > 0 and attempt >= max_attempts)
  local duration = now - (tonumber(f[12]) or now)
  redis.call('HDEL', c.job_key, 'lease_expires_at', 'exec_deadline')
  qminute(c.wfctx, queue, c.now, 'failed', 'failed_duration_ms', duration)
  mduration(c.wfctx, queue, job_type, give_up and 'discarded' or 'retryable', duration)
  emit(c.events, c.maxlen, 'job.failed', c.id, queue, job_type, give_up and 'discarded' or 'retryable', c.now,
    {attempt = attempt, duration_ms = duration,
     error = {code = c.code, message = c.message, type = c.error_type, retryable = not give_up}})

  if give_up then
    redis.call('HSET', c.job_key, 'state', 'discarded', 'discarded_at', c.now, 'completed_at', c.now)
    redis.call('HDEL', c.job_key, 'next_attempt_at', 'retry_delay_ms')
    local dead = (f[11] or defaults.on_exhaustion) == 'dead_letter'
    qcount(c.wfctx, queue, 'active', 'discarded', c.id, c.now)
    mcount(c.wfctx, queue, job_type, 'failed')
    if dead then
      qcount(c.wfctx, queue, nil, 'dead')
      mcount(c.wfctx, queue, job_type, 'dead_lettered')
      redis.call('ZADD', c.dead_key, c.now, c.id)
      retain(c.job_key, c.errors_key, c.ttl_dead, c.wfctx)
    else
      retain(c.job_key, c.errors_key, c.ttl_discarded, c.wfctx)
    end
    emit(c.events, c.maxlen, 'job.discarded', c.id, queue, job_type, 'discarded', c.now,
      {total_attempts = attempt, dead_letter = dead, last_error = {code = c.code, message = c.message}})
    wf_job_done(c.wfctx, c.job_key, c.now, c.events, c.maxlen, c.sequence)
    return 'discarded'
  end
  local delay = retry_delay({initial = f[5], coefficient = f[6], cap = f[7], jitter = f[8], strategy = f[9]},
    defaults, attempt, c.jitter)
  local due = int_str(now + delay)
  redis.call('HSET', c.job_key, 'state', 'retryable', 'next_attempt_at', due, 'retry_delay_ms', delay)
  qcount(c.wfctx, queue, 'active', 'retryable', c.id, c.now)
  mcount(c.wfctx, queue, job_type, 'retried')
  redis.call('ZADD', c.delayed_prefix .. queue, due, c.id)
  emit(c.events, c.maxlen, 'job.retrying', c.id, queue, job_type, 'retryable', c.now,
    {attempt = attempt, max_attempts = max_attempts, next_retry_at = tonumber(due), retry_delay_ms = delay})
  return 'retryable'
end
