-- Per-state job indexes (the admin API's job search): ctx.sidx .. state holds the
-- jobs of every queue in that state, ctx.qidx .. state .. ':' .. queue those of
-- one queue; the score is the time (ms) the job entered the state, so terminal
-- entries past their retention are trimmed by score. Sets that exist anyway serve
-- the rest, so queueing or fetching a job touches no index: the queues' available
-- sets for available jobs (admin_list_available.lua merges them over all queues),
-- and the active set (leases) for active jobs.
local INDEXED = {pending = true, scheduled = true, retryable = true, completed = true, discarded = true,
  cancelled = true}

local function index_move(ctx, id, queue, from, to, now)
  if from and INDEXED[from] then
    redis.call('ZREM', ctx.sidx .. from, id)
    redis.call('ZREM', ctx.qidx .. from .. ':' .. queue, id)
  end
  if to and INDEXED[to] then
    redis.call('ZADD', ctx.sidx .. to, now, id)
    redis.call('ZADD', ctx.qidx .. to .. ':' .. queue, now, id)
  end
end
