-- retry_dead: send a dead-lettered job back to its queue.
-- include: status, qcount, index_move, make_available, emit, read_job
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] dead-letter zset  KEYS[4] sequence counter
-- KEYS[5] event stream
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id  ARGV[4] available key prefix
-- ARGV[5] script context (JSON, see server/store/context.py)
-- Pre:  the job is in the dead-letter set and discarded.
-- Post: state = available, attempt = 0, error history kept, expiry removed,
--       out of the dead-letter set; job.enqueued emitted.
-- Returns {'ok', job} | {'not_found'}.
local job_key = KEYS[1]
local f = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'priority')
if not redis.call('ZSCORE', KEYS[3], ARGV[3]) or f[1] ~= 'discarded' then
  return {STATUS.not_found}
end
redis.call('ZREM', KEYS[3], ARGV[3])
local ctx = cjson.decode(ARGV[5])
qcount(ctx, f[3], 'dead', nil)
index_move(ctx, ARGV[3], f[3], 'discarded', 'available', ARGV[1])
redis.call('PERSIST', job_key)
redis.call('PERSIST', KEYS[2])
redis.call('HSET', job_key, 'attempt', 0)
redis.call('HDEL', job_key, 'discarded_at', 'completed_at', 'retry_delay_ms', 'worker_id')
make_available(job_key, ARGV[3], ARGV[4] .. f[3], KEYS[4], f[4], ARGV[1], ctx)
emit(KEYS[5], ARGV[2], 'job.enqueued', ARGV[3], f[3], f[2], 'available', ARGV[1],
  {priority = tonumber(f[4]) or 0, from_dead_letter = true})
return {STATUS.ok, read_job(job_key, KEYS[2])}
