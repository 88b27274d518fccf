-- include: wf_settle
-- Hook for every transition that ends a job: moves its workflow on, if it has one.
local function wf_job_done(ctx, job_key, now, events, maxlen, sequence_key)
  local f = redis.call('HMGET', job_key, 'workflow_id', 'wf_node', 'state')
  if not f[1] or f[1] == '' then
    return
  end
  if redis.call('HGET', ctx.wf .. f[1], 'state') ~= 'running' then
    return
  end
  wf_settle(ctx, f[1], f[2], f[3] == 'completed' and 'completed' or 'failed', now, events, maxlen, sequence_key)
end
