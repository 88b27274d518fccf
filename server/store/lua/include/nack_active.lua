-- include: check_holder, make_available, qcount, emit, fail_active, mcount
-- Record a failure of an active job held by the caller: requeue it, or apply its
-- retry policy (fail_active). `c` carries what ack_active's does, plus the error
-- (error_tail, error_type, code, message, give_up), requeue, jitter, dead_key,
-- history_cap and the discarded/dead retentions.
-- Returns nil when done, or the refusal from check_holder.
local function nack_active(c)
  local job_key = c.job_key
  local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'type', 'queue', 'priority', 'attempt')
  local refused = check_holder(f, c.worker, c.token)
  if refused then
    return refused
  end
  redis.call('ZREM', c.active, c.id)
  local wfctx = c.wfctx
  if c.requeue then
    make_available(job_key, c.id, wfctx.available .. f[5], c.sequence, f[6], c.now, wfctx)
    qcount(wfctx, f[5], 'active', 'available', c.id, c.now)
    redis.call('HDEL', job_key, 'retry_delay_ms')
    local attempt = tonumber(f[7]) or 0
    local reason = 'requeue'
    if c.undelivered and attempt > 0 then
      attempt, reason = attempt - 1, 'undelivered'
      redis.call('HSET', job_key, 'attempt', attempt)
    end
    if reason == 'requeue' then
      mcount(wfctx, f[5], f[4], 'retried')
    end
    emit(c.events, c.maxlen, 'job.requeued', c.id, f[5], f[4], 'available', c.now,
      {attempt = attempt, reason = reason})
    c.state = 'available'
    return nil
  end
  c.state = fail_active({
    job_key = job_key, errors_key = c.errors_key, id = c.id, now = c.now, events = c.events, maxlen = c.maxlen,
    dead_key = c.dead_key, delayed_prefix = wfctx.delayed, history_cap = c.history_cap, jitter = c.jitter,
    error_tail = c.error_tail, error_type = c.error_type, code = c.code, message = c.message,
    give_up = c.give_up, ttl_discarded = c.ttl_discarded, ttl_dead = c.ttl_dead,
    sequence = c.sequence, wfctx = wfctx,
  })
  return nil
end
