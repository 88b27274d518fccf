-- include: stats
-- One more `field` event (and `amount` added to `sum_field`) in the queue's current minute bucket,
-- and in ctx.sminutes .. minute, the same summed over all queues (one read per minute for the
-- overview however many queues there are).
local function qminute(ctx, queue, now, field, sum_field, amount)
  local minute = math.floor(tonumber(now) / 60000)
  for _, key in ipairs({ctx.minutes .. queue .. ':' .. minute, ctx.sminutes .. minute}) do
    bump(key, field, 1)
    if sum_field and amount then
      bump(key, sum_field, math.floor(amount))
    end
    keep_for(key, 7200000)
  end
end
