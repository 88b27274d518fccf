-- include: qcount, retain, emit, mcount
-- Cancel a member job that has not finished (used for nodes that will never run).
local function wf_cancel_job(ctx, job_id, now, events, maxlen)
  local job_key = ctx.job .. job_id
  local f = redis.call('HMGET', job_key, 'state', 'type', 'queue')
  if not f[1] or f[1] == 'completed' or f[1] == 'cancelled' or f[1] == 'discarded' then
    return false
  end
  redis.call('ZREM', ctx.available .. f[3], job_id)
  redis.call('ZREM', ctx.delayed .. f[3], job_id)
  redis.call('ZREM', ctx.active, job_id)
  redis.call('ZREM', ctx.expiring, job_id)
  redis.call('HSET', job_key, 'state', 'cancelled', 'cancelled_at', now)
  redis.call('HDEL', job_key, 'lease_expires_at', 'exec_deadline', 'next_attempt_at')
  qcount(ctx, f[3], f[1], 'cancelled', job_id, now)
  mcount(ctx, f[3], f[2], 'cancelled')
  retain(job_key, ctx.errors .. job_id, ctx.ttl_cancelled, ctx)
  emit(events, maxlen, 'job.cancelled', job_id, f[3], f[2], 'cancelled', now, {previous_state = f[1], reason = 'workflow'})
  return true
end
