-- enqueue_batch: store many new jobs, all or nothing.
-- include: status, job_from_list, unique_check, insert_job, unique_lock, script_context
-- KEYS[1] queue registry hash  KEYS[2] sequence counter  KEYS[3] event stream
-- KEYS[4] expiring zset  KEYS[5] active zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] script context (JSON, see server/store/context.py)
-- ARGV[4] the jobs: a JSON array of jobs as job_from_list reads them
-- Pre:  no job id exists yet and no job meets a "reject" uniqueness conflict; both are
--       checked for every job before anything is written.
-- Post: as enqueue, job by job, in order.
-- Returns {'ok', {per job: {'ok', enqueued_at, state, due} | {'unique_existing', existing id}}}
--       | {'duplicate', index, id} | {'unique_conflict', index, existing id, state}.
local ctx = script_context(ARGV[3])
ctx.active, ctx.expiring = KEYS[5], KEYS[4]
local jobs = {}
for _, entry in ipairs(cjson.decode(ARGV[4])) do
  jobs[#jobs + 1] = job_from_list(entry, ctx, ARGV[1], ARGV[2])
end

for index, job in ipairs(jobs) do
  if redis.call('EXISTS', ctx.job .. job.id) == 1 then
    return {STATUS.duplicate, index - 1, job.id}
  end
  if job.unique_action == 'reject' then
    local conflict = unique_check(ctx, job, KEYS[3], ARGV[2])
    if conflict then
      return {STATUS.unique_conflict, index - 1, conflict[2], conflict[3]}
    end
  end
end

local results = {}
for _, job in ipairs(jobs) do
  local conflict = unique_check(ctx, job, KEYS[3], ARGV[2])
  if conflict then
    results[#results + 1] = {STATUS.unique_existing, conflict[2]}
  else
    local enqueued_at = insert_job(
      {job = ctx.job .. job.id, available = ctx.available .. job.queue, delayed = ctx.delayed .. job.queue,
       queues = KEYS[1], sequence = KEYS[2], events = KEYS[3], expiring = KEYS[4]}, job)
    unique_lock(ctx, job)
    results[#results + 1] = {STATUS.ok, enqueued_at, job.state, job.due}
  end
end
return {STATUS.ok, results}
