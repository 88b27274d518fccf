-- Terminal jobs expire after their retention period (0: kept). With the script
-- context, a unique job also gives up its uniqueness lock here, unless its policy
-- counts this final state as a duplicate too. `known` (optional) carries what the
-- caller already read: id, fp (unique_fp), states (unique_states), state, has_errors.
local function retain(job_key, errors_key, ttl_ms, ctx, known)
  local ttl = tonumber(ttl_ms) or 0
  if ttl > 0 then
    -- ttl_ms as given (text from ARGV or the context): Redis need not format a Lua number.
    redis.call('PEXPIRE', job_key, ttl_ms)
    if not known or known.has_errors then
      redis.call('PEXPIRE', errors_key, ttl_ms)
    end
  end
  if ctx then
    local f
    if known then
      f = {known.id, known.fp, known.states, known.state}
    else
      f = redis.call('HMGET', job_key, 'unique_fp', 'unique_states', 'state')
      -- The job's id is its key less the job prefix (the hash has no id field).
      table.insert(f, 1, string.sub(job_key, #ctx.job + 1))
    end
    if f[2] and f[2] ~= '' and not string.find(',' .. (f[3] or '') .. ',', ',' .. f[4] .. ',', 1, true) then
      local lock = ctx.unique .. f[2]
      if redis.call('GET', lock) == f[1] then
        redis.call('DEL', lock)
      end
    end
  end
end
