-- include: qcount, retain, emit, wf_job_done, mcount
-- A job that did not start before its expires_at is discarded, never delivered.
-- It gets an "expired" error but no completed_at (it never ran).
local function expire_job(job_key, errors_key, id, now, events, maxlen, available_prefix, delayed_prefix, ttl,
    wfctx, sequence_key)
  local f = redis.call('HMGET', job_key, 'type', 'queue', 'expires_at', 'created_at', 'attempt', 'state')
  qcount(wfctx, f[2], f[6], 'discarded', id, now)
  mcount(wfctx, f[2], f[1], 'expired')
  mcount(wfctx, f[2], f[1], 'failed')
  redis.call('ZREM', available_prefix .. f[2], id)
  redis.call('ZREM', delayed_prefix .. f[2], id)
  local error_json = cjson.encode({attempt = tonumber(f[5]) or 0, code = 'expired', type = 'expired',
    message = 'the job expired before it started', retryable = false, occurred_at = tonumber(now)})
  redis.call('HSET', job_key, 'state', 'discarded', 'discarded_at', now, 'error', error_json)
  redis.call('HDEL', job_key, 'next_attempt_at')
  redis.call('RPUSH', errors_key, error_json)
  retain(job_key, errors_key, ttl, wfctx)
  emit(events, maxlen, 'job.expired', id, f[2], f[1], 'discarded', now,
    {expired_at = tonumber(f[3]) or 0, created_at = tonumber(f[4]) or 0})
  wf_job_done(wfctx, job_key, now, events, maxlen, sequence_key)
end
