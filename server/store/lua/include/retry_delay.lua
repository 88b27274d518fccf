-- Delay (ms) before the retry that follows failed attempt n: the same formulas as
-- server.domain.retry.backoff_delay_ms. `p` holds the job's own policy fields (initial,
-- coefficient, cap, jitter '1'|'0', strategy), false where the job has none; those
-- fall back to `defaults`, the default policy the server passes in the script context.
-- `jitter` is the factor the caller drew from [0.5, 1.5).
local function retry_delay(p, defaults, n, jitter)
  local initial = tonumber(p.initial) or defaults.initial_ms
  local coef = tonumber(p.coefficient) or defaults.coefficient
  local cap = tonumber(p.cap) or defaults.max_interval_ms
  local strategy = p.strategy or defaults.strategy
  local raw
  if strategy == 'linear' then
    raw = initial * n
  elseif strategy == 'constant' then
    raw = initial
  elseif strategy == 'polynomial' then
    raw = initial * (n ^ coef)
  else
    raw = initial * (coef ^ (n - 1))
  end
  local delay = math.min(raw, cap)
  local jittered = defaults.jitter
  if p.jitter then
    jittered = p.jitter ~= '0'
  end
  if jittered then
    delay = math.min(delay * tonumber(jitter), cap)
  end
  return math.floor(delay)
end
