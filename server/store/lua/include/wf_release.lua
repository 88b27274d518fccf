-- include: csv, qcount, make_available, emit
-- Release a node whose dependencies are done: hand it their results and make its job available.
local function wf_release(ctx, nodes_key, node, now, events, maxlen, sequence_key)
  local job_id = redis.call('HGET', nodes_key, 'j:' .. node)
  local results = {}
  for _, dependency in ipairs(csv(redis.call('HGET', nodes_key, 'p:' .. node))) do
    local dependency_job = redis.call('HGET', nodes_key, 'j:' .. dependency)
    results[#results + 1] = redis.call('HGET', ctx.job .. dependency_job, 'result') or 'null'
  end
  local job_key = ctx.job .. job_id
  local f = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'priority', 'scheduled_at')
  redis.call('HSET', nodes_key, 's:' .. node, 'ready')
  if f[1] ~= 'pending' then
    return
  end
  redis.call('HSET', job_key, 'parent_results', '[' .. table.concat(results, ',') .. ']')
  -- A step with its own delay waits for it after its dependencies are done.
  if f[5] and tonumber(f[5]) > tonumber(now) then
    redis.call('HSET', job_key, 'state', 'scheduled')
    redis.call('ZADD', ctx.delayed .. f[3], f[5], job_id)
    qcount(ctx, f[3], 'pending', 'scheduled', job_id, now)
    return
  end
  make_available(job_key, job_id, ctx.available .. f[3], sequence_key, f[4], now, ctx)
  qcount(ctx, f[3], 'pending', 'available', job_id, now)
  emit(events, maxlen, 'job.enqueued', job_id, f[3], f[2], 'available', now, {priority = tonumber(f[4]) or 0})
end
