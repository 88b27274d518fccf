-- include: stats, metric_bucket
-- A job of `job_type` that waited `ms` from enqueue (or becoming due) to its first start (see mcount).
-- Bounds of ojs-observability.md §8.2 in ms, as server/model/metrics.py lists them.
local QUEUE_TIME_BOUNDS_MS = {10, 50, 100, 500, 1000, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

local function mqueue_time(ctx, queue, job_type, ms)
  local key = ctx.metrics .. queue
  bump(key, 'q|' .. (job_type or '') .. '|' .. metric_bucket(QUEUE_TIME_BOUNDS_MS, ms), 1)
  bump(key, 'qs|' .. (job_type or ''), math.floor(ms))
end
