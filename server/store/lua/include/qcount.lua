-- include: stats, index_move
-- ctx.counts .. queue is a hash of gauges (jobs now scheduled, pending, active,
-- retryable, dead-lettered) and totals (jobs that ever completed, were discarded
-- or cancelled); available jobs are counted by their sorted set instead.
-- ctx.minutes .. queue .. ':' .. minute holds per-minute activity for the last two hours.
local GAUGES = {scheduled = true, pending = true, active = true, retryable = true, dead = true}
local TOTALS = {completed = true, discarded = true, cancelled = true}

-- A job of `queue` moved from state `from` to `to` (either nil: it appeared or
-- went away); given its `id` and `now` (ms) it also moves between the state indexes.
local function qcount(ctx, queue, from, to, id, now)
  if id then
    index_move(ctx, id, queue, from, to, now)
  end
  local key = ctx.counts .. queue
  if from and GAUGES[from] then
    bump(key, from, -1)
  end
  if to and (GAUGES[to] or TOTALS[to]) then
    bump(key, to, 1)
  end
end
