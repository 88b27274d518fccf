-- cron_fire: fire one due occurrence of a cron entry, exactly once.
-- include: status, job_from_list, insert_job, emit
-- KEYS[1] entry hash  KEYS[2] due zset
-- KEYS[3] job hash  KEYS[4] available zset  KEYS[5] delayed zset  KEYS[6] queue registry
-- KEYS[7] sequence counter  KEYS[8] event stream  KEYS[9] expiring zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] entry name
-- ARGV[4] the occurrence being fired: the entry's next_run_at as read by the caller
-- ARGV[5] the following occurrence (ms)  ARGV[6] script context (JSON, see server/store/context.py)
-- ARGV[7] the job (JSON, as job_from_list reads it)
-- Pre:  the entry exists, is enabled and its next_run_at still equals ARGV[4]. The
--       occurrence time is the firing's identity: however many servers race for it,
--       only the first call finds it unchanged, and a crashed caller leaves it to be retried.
-- Post: next_run_at = ARGV[5] (in the due set too). With overlap "skip" and the previous
--       firing's job not finished: no job, cron.skipped. Otherwise the job is enqueued,
--       last_run_at, run_count, last_job_id updated, cron.triggered emitted.
-- Returns {'fired', job id} | {'skipped', blocking job id} | {'stale'}.
local job = job_from_list(cjson.decode(ARGV[7]), cjson.decode(ARGV[6]), ARGV[1], ARGV[2])
local f = redis.call('HMGET', KEYS[1], 'next_run_at', 'enabled', 'overlap_policy', 'last_job_id')
if f[1] ~= ARGV[4] or f[2] ~= '1' then
  return {STATUS.stale}
end
redis.call('HSET', KEYS[1], 'next_run_at', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3])

if f[3] == 'skip' and f[4] and f[4] ~= '' then
  local ctx = cjson.decode(ARGV[6])
  local previous = redis.call('HGET', ctx.job .. f[4], 'state')
  if previous and previous ~= 'completed' and previous ~= 'cancelled' and previous ~= 'discarded' then
    redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[2], '*', 'type', 'cron.skipped', 'job_id', f[4],
      'queue', job.queue, 'job_type', job.type, 'state', previous, 'time', ARGV[1],
      'data', cjson.encode({cron_name = ARGV[3], reason = 'overlap_skip', occurrence = tonumber(ARGV[4]),
                            job_type = job.type, queue = job.queue}))
    return {STATUS.skipped, f[4]}
  end
end

job.unique_fp = ''
insert_job(
  {job = KEYS[3], available = KEYS[4], delayed = KEYS[5], queues = KEYS[6], sequence = KEYS[7],
   events = KEYS[8], expiring = KEYS[9]}, job)
redis.call('HSET', KEYS[1], 'last_run_at', ARGV[1], 'last_job_id', job.id)
redis.call('HINCRBY', KEYS[1], 'run_count', 1)
emit(KEYS[8], ARGV[2], 'cron.triggered', job.id, job.queue, job.type, job.state, ARGV[1],
  {cron_name = ARGV[3], occurrence = tonumber(ARGV[4])})
return {STATUS.fired, job.id}
