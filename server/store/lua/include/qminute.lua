-- include: stats
-- One more `field` event (and `amount` added to `sum_field`) in the queue's current minute bucket.
-- Outcomes (enqueued, completed, failed) also go to ctx.sminutes .. minute, summed over all queues,
-- so the overview reads one bucket per minute however many queues there are.
local OVERALL = {enqueued = true, completed = true, failed = true}
-- The minute of the last `now` seen, as text: a script call has one `now`, and turning a
-- number into text (sprintf) costs more than the rest of this function.
local minute_of, minute_text = nil, nil

local function minute_bump(key, field, sum_field, amount)
  bump(key, field, 1)
  if sum_field and amount then
    bump(key, sum_field, math.floor(amount))
  end
  keep_for(key, 7200000)
end

local function qminute(ctx, queue, now, field, sum_field, amount)
  if now ~= minute_of then
    minute_of, minute_text = now, tostring(math.floor(tonumber(now) / 60000))
  end
  minute_bump(ctx.minutes .. queue .. ':' .. minute_text, field, sum_field, amount)
  if OVERALL[field] then
    minute_bump(ctx.sminutes .. minute_text, field, sum_field, amount)
  end
end
