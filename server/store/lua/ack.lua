-- ack: an active job completed.
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] active zset  KEYS[4] event stream
-- KEYS[5] sequence counter  KEYS[6] expiring zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id
-- ARGV[4] '1' if a result is given  ARGV[5] result JSON  ARGV[6] worker id or ''
-- ARGV[7] lease token or ''  ARGV[8] retention of completed jobs (ms, 0 = keep)
-- ARGV[9] workflow context (JSON, see lib.lua)
-- Pre:  state = active; the caller holds the lease (worker and token match when given).
-- Post: state = completed, completed_at, result stored, last error cleared,
--       lease released, expiry set; job.completed emitted; its workflow moves on.
-- Returns {'ok', job} | {'not_found'} | {'conflict', state} | {'not_owner', worker}
--       | {'stale_lease', current token}.
local job_key = KEYS[1]
local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'type', 'queue', 'started_at', 'attempt')
local refused = check_holder(f, ARGV[6], ARGV[7])
if refused then
  return refused
end
redis.call('HSET', job_key, 'state', 'completed', 'completed_at', ARGV[1])
if ARGV[4] == '1' then
  redis.call('HSET', job_key, 'result', ARGV[5])
end
redis.call('HDEL', job_key, 'error', 'lease_expires_at', 'exec_deadline', 'next_attempt_at')
redis.call('ZREM', KEYS[3], ARGV[3])
local duration = tonumber(ARGV[1]) - (tonumber(f[6]) or tonumber(ARGV[1]))
emit(KEYS[4], ARGV[2], 'job.completed', ARGV[3], f[5], f[4], 'completed', ARGV[1],
  {attempt = tonumber(f[7]) or 0, duration_ms = duration})
local wfctx = cjson.decode(ARGV[9])
wfctx.active, wfctx.expiring = KEYS[3], KEYS[6]
qcount(wfctx, f[5], 'active', 'completed')
qminute(wfctx, f[5], ARGV[1], 'completed', 'duration_ms', duration)
wf_job_done(wfctx, job_key, ARGV[1], KEYS[4], ARGV[2], KEYS[5])
local job = read_job(job_key, KEYS[2])
retain(job_key, KEYS[2], ARGV[8], wfctx)
return {'ok', job}
