-- include: rank_score, notify, stats
-- Put a job at the back of its priority in its queue.
local function make_available(job_key, id, available_key, sequence_key, priority, now, ctx)
  local sequence = next_sequence(sequence_key)
  redis.call('ZADD', available_key, rank_score(priority or 0, sequence), id)
  redis.call('HSET', job_key, 'state', 'available', 'enqueued_at', now)
  redis.call('HDEL', job_key, 'next_attempt_at', 'lease_expires_at', 'exec_deadline')
  notify(ctx, available_key)
end
