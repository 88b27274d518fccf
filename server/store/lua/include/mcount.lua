-- include: stats
-- Metrics read by the Prometheus scrape (server/store/metrics.py). ctx.metrics .. queue
-- is a hash of cluster-wide totals per job type, summed like the statistics:
-- 'c|<name>|<type>' counts jobs (enqueued, completed, failed, retried, dead_lettered,
-- expired, cancelled); 'd|<state>|<type>|<i>' and 'ds|<state>|<type>' are the run-time
-- histogram (mduration), 'q|<type>|<i>' and 'qs|<type>' the wait from enqueue to first
-- start (mqueue_time): bucket i counts, not cumulative (the scrape sums them), and the sum in ms.
local function mcount(ctx, queue, job_type, name)
  bump(ctx.metrics .. queue, 'c|' .. name .. '|' .. (job_type or ''), 1)
end
