-- include: stats
-- One more `field` event (and `amount` added to `sum_field`) in the queue's current minute bucket.
local function qminute(ctx, queue, now, field, sum_field, amount)
  local key = ctx.minutes .. queue .. ':' .. math.floor(tonumber(now) / 60000)
  bump(key, field, 1)
  if sum_field and amount then
    bump(key, sum_field, math.floor(amount))
  end
  keep_for(key, 7200000)
end
