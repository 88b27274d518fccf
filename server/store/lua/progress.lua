-- progress: a worker reports the progress of an active job it holds (urn:ojs:ext:progress).
-- include: status, check_holder, int_str, active_score, emit
-- KEYS[1] active zset  KEYS[2] event stream
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job key prefix  ARGV[4] job id
-- ARGV[5] worker id or ''  ARGV[6] lease token or ''  ARGV[7] default lease length (ms)
-- ARGV[8] progress (0..1, already clamped) or ''  ARGV[9] message or ''  ARGV[10] message given ('1'/'0')
-- ARGV[11] data as a JSON object or ''  ARGV[12] checkpoint as a JSON object or ''
-- Pre:  none.
-- Post: for an active job held by the caller: progress = max(reported, the value
--       already reported in this attempt) when a value is given; message and data
--       replace the previous ones when given (a new attempt starts from nothing);
--       progress_attempt = attempt, progress_at = now; the lease is extended as by a
--       heartbeat; a checkpoint, when given, replaces the job's (kept across attempts);
--       one job.progress event. Any other state: nothing changes.
-- Returns {ok, state, progress or '', message, data, attempt, lease deadline, type}
--      or {ignored, state, progress or '', message, data, attempt, progress_at, type}
--      or {not_found} / {not_owner, holder} / {stale_lease, token}.
local now = ARGV[1]
local id = ARGV[4]
local job_key = ARGV[3] .. id
local f = redis.call('HMGET', job_key, 'state', 'worker_id', 'lease_token', 'visibility_timeout_ms',
  'exec_deadline', 'queue', 'type', 'attempt', 'progress', 'progress_attempt', 'progress_message',
  'progress_data', 'progress_at')
if not f[1] then
  return {STATUS.not_found}
end
local attempt = f[8] or '0'
local same_attempt = f[10] == attempt
if f[1] ~= 'active' then
  -- Fire-and-forget: a report that arrives after the job left `active` is ignored, not refused.
  if same_attempt then
    return {STATUS.ignored, f[1], f[9] or '', f[11] or '', f[12] or '', attempt, f[13] or '', f[7] or ''}
  end
  return {STATUS.ignored, f[1], '', '', '', attempt, '', f[7] or ''}
end
local refused = check_holder(f, ARGV[5], ARGV[6])
if refused then
  return refused
end

local progress = same_attempt and f[9] or ''
local message = same_attempt and f[11] or ''
local data = same_attempt and f[12] or ''
if ARGV[8] ~= '' and (progress == '' or tonumber(ARGV[8]) > tonumber(progress)) then
  progress = ARGV[8]
end
if ARGV[10] == '1' then
  message = ARGV[9]
end
if ARGV[11] ~= '' then
  data = ARGV[11]
end
if ARGV[12] ~= '' then
  redis.call('HSET', job_key, 'checkpoint', ARGV[12])
end
redis.call('HSET', job_key, 'progress_attempt', attempt, 'progress_at', now)
for field, value in pairs({progress = progress, progress_message = message, progress_data = data}) do
  if value == '' then
    redis.call('HDEL', job_key, field)
  else
    redis.call('HSET', job_key, field, value)
  end
end

-- A report proves the worker alive: it extends the lease as a heartbeat does.
local lease = tonumber(f[4]) or tonumber(ARGV[7])
local deadline = int_str(tonumber(now) + lease)
redis.call('HSET', job_key, 'lease_expires_at', deadline)
redis.call('ZADD', KEYS[1], active_score(deadline, f[5]), id)

local event = {worker_id = f[2] or '', attempt = tonumber(attempt) or 0, visible_until = tonumber(deadline)}
if progress ~= '' then
  event['progress'] = tonumber(progress)
  event['progress_percent'] = tonumber(progress) * 100
end
if message ~= '' then
  event['progress_message'] = message
end
if data ~= '' then
  event['data'] = cjson.decode(data)
end
emit(KEYS[2], ARGV[2], 'job.progress', id, f[6] or '', f[7] or '', 'active', now, event)
return {STATUS.ok, 'active', progress, message, data, attempt, deadline, f[7] or ''}
