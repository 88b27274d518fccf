-- cancel: stop a job that has not reached a terminal state.
-- include: status, emit, qcount, wf_job_done, read_job, retain, mcount
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] active zset  KEYS[4] event stream
-- KEYS[5] expiring zset  KEYS[6] sequence counter
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id
-- ARGV[4] available key prefix  ARGV[5] delayed key prefix  ARGV[6] reason or ''
-- ARGV[7] retention of cancelled jobs (ms, 0 = keep)  ARGV[8] workflow context (JSON, see server/store/context.py)
-- Pre:  state is scheduled, available, pending, retryable or active.
-- Post: state = cancelled, cancelled_at; removed from every index; an active
--       job's worker learns of it on its next heartbeat or ack; job.cancelled emitted.
-- Returns {'ok', previous state, job} | {'not_found'} | {'conflict', state}.
local job_key = KEYS[1]
local id = ARGV[3]
local f = redis.call('HMGET', job_key, 'state', 'type', 'queue')
if not f[1] then
  return {STATUS.not_found}
end
local state = f[1]
if state == 'completed' or state == 'cancelled' or state == 'discarded' then
  return {STATUS.conflict, state}
end
redis.call('ZREM', ARGV[4] .. f[3], id)
redis.call('ZREM', ARGV[5] .. f[3], id)
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[5], id)
redis.call('HSET', job_key, 'state', 'cancelled', 'cancelled_at', ARGV[1])
redis.call('HDEL', job_key, 'lease_expires_at', 'exec_deadline', 'next_attempt_at')
local data = {previous_state = state}
if ARGV[6] ~= '' then
  data['reason'] = ARGV[6]
end
emit(KEYS[4], ARGV[2], 'job.cancelled', id, f[3], f[2], 'cancelled', ARGV[1], data)
local wfctx = cjson.decode(ARGV[8])
wfctx.active, wfctx.expiring = KEYS[3], KEYS[5]
qcount(wfctx, f[3], state, 'cancelled', id, ARGV[1])
mcount(wfctx, f[3], f[2], 'cancelled')
wf_job_done(wfctx, job_key, ARGV[1], KEYS[4], ARGV[2], KEYS[6])
local job = read_job(job_key, KEYS[2])
retain(job_key, KEYS[2], ARGV[7], wfctx)
return {STATUS.ok, state, job}
