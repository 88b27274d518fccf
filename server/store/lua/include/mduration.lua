-- include: stats, metric_bucket
-- An attempt of `job_type` that ran `ms` and ended in `state` (see mcount for the hash).
-- Bounds of ojs-observability.md §8.2 in ms, as server/model/metrics.py lists them.
local DURATION_BOUNDS_MS = {5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 120000, 300000}

local function mduration(ctx, queue, job_type, state, ms)
  local label = state .. '|' .. (job_type or '')
  local key = ctx.metrics .. queue
  bump(key, 'd|' .. label .. '|' .. metric_bucket(DURATION_BOUNDS_MS, ms), 1)
  bump(key, 'ds|' .. label, math.floor(ms))
end
