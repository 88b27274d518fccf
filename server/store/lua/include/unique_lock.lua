-- Take the uniqueness lock for a job just inserted (for its period, or until it ends).
local function unique_lock(ctx, a)
  if a.unique_fp == '' then
    return
  end
  if a.unique_period ~= '' then
    redis.call('SET', ctx.unique .. a.unique_fp, a.id, 'PX', a.unique_period)
  else
    redis.call('SET', ctx.unique .. a.unique_fp, a.id)
  end
end
