-- activate: release a pending job to its queue.
-- include: status, rank_score, qcount, notify, emit, read_job
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] sequence counter  KEYS[4] event stream
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id  ARGV[4] available key prefix
-- ARGV[5] script context (JSON, see server/store/context.py)
-- Pre:  state = pending.
-- Post: state = available, ranked in its queue, enqueued_at; job.enqueued emitted.
-- Returns {'ok', job} | {'not_found'} | {'conflict', state}.
local job_key = KEYS[1]
local f = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'priority', 'workflow_id')
if not f[1] then
  return {STATUS.not_found}
end
-- A workflow releases its own pending steps when their dependencies are done.
if f[1] ~= 'pending' or (f[5] and f[5] ~= '') then
  return {STATUS.conflict, f[1]}
end
local sequence = redis.call('INCR', KEYS[3])
local ctx = cjson.decode(ARGV[5])
redis.call('ZADD', ARGV[4] .. f[3], rank_score(f[4] or 0, sequence), ARGV[3])
redis.call('HSET', job_key, 'state', 'available', 'enqueued_at', ARGV[1], 'activated_at', ARGV[1])
qcount(ctx, f[3], 'pending', 'available', ARGV[3], ARGV[1])
notify(ctx, ARGV[4] .. f[3])
emit(KEYS[4], ARGV[2], 'job.enqueued', ARGV[3], f[3], f[2], 'available', ARGV[1],
  {priority = tonumber(f[4]) or 0, activated = true})
return {STATUS.ok, read_job(job_key, KEYS[2])}
