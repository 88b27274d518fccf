-- nack: an active job failed; apply its retry policy.
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] active zset  KEYS[4] event stream
-- KEYS[5] sequence counter  KEYS[6] dead-letter zset  KEYS[7] expiring zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id
-- ARGV[4] error JSON object without "attempt" (added here)  ARGV[5] error type
-- ARGV[6] retryable: '0' = never, '' = per policy  ARGV[7] requeue '1'|'0'
-- ARGV[8] worker id or ''  ARGV[9] jitter factor in [0.5, 1.5)
-- ARGV[10] available key prefix  ARGV[11] delayed key prefix  ARGV[12] error history cap
-- ARGV[13] error code  ARGV[14] error message  ARGV[15] lease token or ''
-- ARGV[16] retention of discarded jobs (ms)  ARGV[17] retention of dead-lettered jobs (ms)
-- ARGV[18] workflow context (JSON, see lib.lua)
-- Pre:  state = active; the caller holds the lease.
-- Post: requeue -> available now, no failure recorded (job.requeued);
--       otherwise see fail_active in lib.lua. The lease is released.
-- Returns {'ok', job} | {'not_found'} | {'conflict', state} | {'not_owner', worker}
--       | {'stale_lease', current token}.
local job_key = KEYS[1]
local id = ARGV[3]
local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'type', 'queue', 'priority', 'attempt')
local refused = check_holder(f, ARGV[8], ARGV[15])
if refused then
  return refused
end
redis.call('ZREM', KEYS[3], id)
local wfctx = cjson.decode(ARGV[18])
wfctx.active, wfctx.expiring = KEYS[3], KEYS[7]

if ARGV[7] == '1' then
  make_available(job_key, id, ARGV[10] .. f[5], KEYS[5], f[6], ARGV[1], wfctx)
  qcount(wfctx, f[5], 'active', 'available')
  redis.call('HDEL', job_key, 'retry_delay_ms')
  emit(KEYS[4], ARGV[2], 'job.requeued', id, f[5], f[4], 'available', ARGV[1],
    {attempt = tonumber(f[7]) or 0, reason = 'requeue'})
  return {'ok', read_job(job_key, KEYS[2])}
end

fail_active({
  job_key = job_key, errors_key = KEYS[2], id = id, now = ARGV[1], events = KEYS[4], maxlen = ARGV[2],
  dead_key = KEYS[6], delayed_prefix = ARGV[11], history_cap = ARGV[12], jitter = ARGV[9],
  error_tail = ARGV[4], error_type = ARGV[5], code = ARGV[13], message = ARGV[14],
  give_up = ARGV[6] == '0', ttl_discarded = ARGV[16], ttl_dead = ARGV[17],
  sequence = KEYS[5], wfctx = wfctx,
})
return {'ok', read_job(job_key, KEYS[2])}
