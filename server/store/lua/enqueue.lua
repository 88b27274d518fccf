-- enqueue: store a new job and make it visible in its initial state.
-- include: status, job_from_list, unique_check, read_job, insert_job, unique_lock, script_context
-- KEYS[1] job hash  KEYS[2] available zset of the queue  KEYS[3] delayed zset of the queue
-- KEYS[4] queue registry hash  KEYS[5] sequence counter  KEYS[6] event stream  KEYS[7] expiring zset
-- KEYS[8] active zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] script context (JSON, see server/store/context.py)
-- ARGV[4] the job (JSON, as job_from_list reads it)
-- Pre:  the job key does not exist; under a unique policy, no job with the same
--       fingerprint is in the policy's states (else reject, ignore or replace it).
-- Post: hash written with state; available -> ranked in its queue, scheduled -> in the
--       delayed set; with an expiry -> in the expiring set; queue registered and counted;
--       uniqueness lock taken; job.enqueued emitted (plus job.scheduled when scheduled).
-- Returns {'ok', enqueued_at or '', state, due or ''} | {'duplicate', existing state}
--       | {'unique_conflict', existing id, state} | {'unique_existing', existing id, job}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {STATUS.duplicate, redis.call('HGET', KEYS[1], 'state') or ''}
end
local ctx = script_context(ARGV[3])
ctx.active, ctx.expiring = KEYS[8], KEYS[7]
local job = job_from_list(cjson.decode(ARGV[4]), ctx, ARGV[1], ARGV[2])
local conflict = unique_check(ctx, job, KEYS[6], ARGV[2])
if conflict then
  if conflict[1] == STATUS.unique_existing then
    return {STATUS.unique_existing, conflict[2], read_job(ctx.job .. conflict[2], ctx.errors .. conflict[2])}
  end
  return conflict
end
local enqueued_at = insert_job(
  {job = KEYS[1], available = KEYS[2], delayed = KEYS[3], queues = KEYS[4], sequence = KEYS[5],
   events = KEYS[6], expiring = KEYS[7]}, job)
unique_lock(ctx, job)
return {STATUS.ok, enqueued_at, job.state, job.due}
