-- ack: an active job completed.
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] active zset  KEYS[4] event stream
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id
-- ARGV[4] '1' if a result is given  ARGV[5] result JSON  ARGV[6] worker id or ''
-- Pre:  state = active; when both the job and the call name a worker, they match.
-- Post: state = completed, completed_at, result stored, last error cleared,
--       lease released; job.completed emitted.
-- Returns {'ok', job} | {'not_found'} | {'conflict', state} | {'not_owner', worker}.
local job_key = KEYS[1]
local fields = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'worker_id', 'started_at', 'attempt')
if not fields[1] then
  return {'not_found'}
end
if fields[1] ~= 'active' then
  return {'conflict', fields[1]}
end
if ARGV[6] ~= '' and fields[4] and fields[4] ~= '' and fields[4] ~= ARGV[6] then
  return {'not_owner', fields[4]}
end
redis.call('HSET', job_key, 'state', 'completed', 'completed_at', ARGV[1])
if ARGV[4] == '1' then
  redis.call('HSET', job_key, 'result', ARGV[5])
end
redis.call('HDEL', job_key, 'error', 'lease_expires_at', 'next_attempt_at')
redis.call('ZREM', KEYS[3], ARGV[3])
local duration = tonumber(ARGV[1]) - (tonumber(fields[5]) or tonumber(ARGV[1]))
emit(KEYS[4], ARGV[2], 'job.completed', ARGV[3], fields[3], fields[2], 'completed', ARGV[1],
  {attempt = tonumber(fields[6]) or 0, duration_ms = duration})
return {'ok', read_job(job_key, KEYS[2])}
