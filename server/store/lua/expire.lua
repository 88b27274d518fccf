-- expire: discard jobs whose expires_at passed before they started.
-- include: expire_job
-- KEYS[1] expiring zset  KEYS[2] event stream  KEYS[3] sequence counter  KEYS[4] active zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] batch size
-- ARGV[4] job key prefix  ARGV[5] errors key prefix  ARGV[6] available key prefix
-- ARGV[7] delayed key prefix  ARGV[8] retention of discarded jobs (ms)
-- ARGV[9] workflow context (JSON, see server/store/context.py)
-- Pre:  none; at most ARGV[3] due entries are examined.
-- Post: each due job still waiting to start (scheduled, pending, available or
--       retryable) is discarded with an "expired" error (see expire_job);
--       every examined entry leaves the expiring set.
-- Returns {entries examined, jobs expired}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local expired = 0
local wfctx = cjson.decode(ARGV[9])
wfctx.active, wfctx.expiring = KEYS[4], KEYS[1]
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  local job_key = ARGV[4] .. id
  local state = redis.call('HGET', job_key, 'state')
  if state == 'scheduled' or state == 'pending' or state == 'available' or state == 'retryable' then
    expire_job(job_key, ARGV[5] .. id, id, ARGV[1], KEYS[2], ARGV[2], ARGV[6], ARGV[7], ARGV[8], wfctx, KEYS[3])
    expired = expired + 1
  end
end
return {#due, expired}
