-- include: csv
-- The default retry policy (of jobs stored without their own), which the script context carries
-- as one comma-separated string: max attempts, initial interval (ms), backoff coefficient,
-- max interval (ms), jitter '1'|'0', strategy, on_exhaustion. Only failure paths need it, so it
-- is parsed on first use, not by every script call that reads the context.
local function default_retry(ctx)
  local policy = ctx.retry_policy
  if not policy then
    local p = csv(ctx.retry)
    policy = {max_attempts = tonumber(p[1]), initial_ms = tonumber(p[2]), coefficient = tonumber(p[3]),
      max_interval_ms = tonumber(p[4]), jitter = p[5] == '1', strategy = p[6], on_exhaustion = p[7]}
    ctx.retry_policy = policy
  end
  return policy
end
