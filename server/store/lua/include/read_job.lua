-- The job hash as a flat array, plus its error history. Pass has_errors = false
-- when the job is known to have none (no `error` field), to skip reading it.
local function read_job(job_key, errors_key, has_errors)
  if has_errors == false then
    return {redis.call('HGETALL', job_key), {}}
  end
  return {redis.call('HGETALL', job_key), redis.call('LRANGE', errors_key, 0, -1)}
end
