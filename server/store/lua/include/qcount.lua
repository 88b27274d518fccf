-- include: stats
-- ctx.counts .. queue is a hash of gauges (jobs now scheduled, pending, active,
-- retryable, dead-lettered) and totals (jobs that ever completed, were discarded
-- or cancelled); available jobs are counted by their sorted set instead.
-- ctx.minutes .. queue .. ':' .. minute holds per-minute activity for the last two hours.
local GAUGES = {scheduled = true, pending = true, active = true, retryable = true, dead = true}
local TOTALS = {completed = true, discarded = true, cancelled = true}

local function qcount(ctx, queue, from, to)
  local key = ctx.counts .. queue
  if from and GAUGES[from] then
    bump(key, from, -1)
  end
  if to and (GAUGES[to] or TOTALS[to]) then
    bump(key, to, 1)
  end
end
