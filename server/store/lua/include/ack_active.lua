-- include: check_holder, emit, qcount, qminute, wf_job_done, retain, mcount, mduration
-- Complete an active job held by the caller. `c` carries the job's keys and id,
-- the shared keys (active, expiring, events, sequence), now, maxlen, worker,
-- token, has_result/result, the completed-job retention and the script context.
-- Returns nil when done, or the refusal from check_holder.
local function ack_active(c)
  local job_key = c.job_key
  local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'type', 'queue', 'started_at', 'attempt',
    'workflow_id', 'unique_fp', 'unique_states', 'error')
  local refused = check_holder(f, c.worker, c.token)
  if refused then
    return refused
  end
  if c.has_result then
    redis.call('HSET', job_key, 'state', 'completed', 'completed_at', c.now, 'result', c.result)
  else
    redis.call('HSET', job_key, 'state', 'completed', 'completed_at', c.now)
  end
  redis.call('HDEL', job_key, 'error', 'lease_expires_at', 'exec_deadline', 'next_attempt_at')
  redis.call('ZREM', c.active, c.id)
  local duration = tonumber(c.now) - (tonumber(f[6]) or tonumber(c.now))
  emit(c.events, c.maxlen, 'job.completed', c.id, f[5], f[4], 'completed', c.now,
    {attempt = tonumber(f[7]) or 0, duration_ms = duration})
  local wfctx = c.wfctx
  qcount(wfctx, f[5], 'active', 'completed', c.id, c.now)
  qminute(wfctx, f[5], c.now, 'completed', 'duration_ms', duration)
  mcount(wfctx, f[5], f[4], 'completed')
  mduration(wfctx, f[5], f[4], 'completed', duration)
  if f[8] and f[8] ~= '' then
    wf_job_done(wfctx, job_key, c.now, c.events, c.maxlen, c.sequence)
  end
  local has_errors = f[11] ~= false
  retain(job_key, c.errors_key, c.ttl, wfctx,
    {id = c.id, fp = f[9], states = f[10], state = 'completed', has_errors = has_errors})
  c.state, c.has_errors = 'completed', has_errors
  return nil
end
