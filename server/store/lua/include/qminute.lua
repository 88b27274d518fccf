-- include: stats
-- One more `field` event (and `amount` added to `sum_field`) in the queue's current minute bucket.
-- Outcomes (enqueued, completed, failed) also go to ctx.sminutes .. minute, summed over all queues,
-- so the overview reads one bucket per minute however many queues there are.
local OVERALL = {enqueued = true, completed = true, failed = true}

local function qminute(ctx, queue, now, field, sum_field, amount)
  local minute = math.floor(tonumber(now) / 60000)
  local keys = {ctx.minutes .. queue .. ':' .. minute}
  if OVERALL[field] then
    keys[2] = ctx.sminutes .. minute
  end
  for _, key in ipairs(keys) do
    bump(key, field, 1)
    if sum_field and amount then
      bump(key, sum_field, math.floor(amount))
    end
    keep_for(key, 7200000)
  end
end
