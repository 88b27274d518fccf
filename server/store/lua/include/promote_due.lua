-- include: make_available, qcount
-- Move due scheduled/retryable jobs of one queue to available.
local function promote_due(ctx, available_key, delayed_key, sequence_key, now, limit)
  local due = redis.call('ZRANGEBYSCORE', delayed_key, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed_key, id)
    local job_key = ctx.job .. id
    local f = redis.call('HMGET', job_key, 'state', 'priority', 'queue')
    if f[1] == 'scheduled' or f[1] == 'retryable' then
      make_available(job_key, id, available_key, sequence_key, f[2], now, ctx)
      qcount(ctx, f[3], f[1], 'available', id, now)
    end
  end
  return #due
end
