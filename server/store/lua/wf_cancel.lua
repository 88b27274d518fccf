-- wf_cancel: cancel a running workflow and every member job that has not finished.
-- include: status, wf_cancel_job, emit, retain
-- KEYS[1] workflow hash  KEYS[2] workflow node hash  KEYS[3] event stream  KEYS[4] active zset
-- KEYS[5] expiring zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] workflow id
-- ARGV[4] workflow context (JSON, see server/store/context.py)
-- Pre:  the workflow exists and is running.
-- Post: state = cancelled; unfinished nodes cancelled with their jobs (active ones too:
--       their workers learn it on the next heartbeat); workflow.cancelled emitted.
-- Returns {'ok', nodes cancelled, nodes already completed} | {'not_found'} | {'conflict', state}.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {STATUS.not_found}
end
if state ~= 'running' then
  return {STATUS.conflict, state}
end
local ctx = cjson.decode(ARGV[4])
ctx.active, ctx.expiring = KEYS[4], KEYS[5]
local count = tonumber(redis.call('HGET', KEYS[1], 'node_count'))
local cancelled, completed = 0, 0
for index = 0, count - 1 do
  local i = tostring(index)
  local node_state = redis.call('HGET', KEYS[2], 's:' .. i)
  if node_state == 'waiting' or node_state == 'ready' then
    wf_cancel_job(ctx, redis.call('HGET', KEYS[2], 'j:' .. i), ARGV[1], KEYS[3], ARGV[2])
    redis.call('HSET', KEYS[2], 's:' .. i, 'cancelled')
    cancelled = cancelled + 1
  elseif node_state == 'completed' then
    completed = completed + 1
  end
end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'cancelled_at', ARGV[1], 'completed_at', ARGV[1])
emit(KEYS[3], ARGV[2], 'workflow.cancelled', '', '', '', 'cancelled', ARGV[1],
  {workflow_id = ARGV[3], steps_cancelled = cancelled})
retain(KEYS[1], KEYS[2], ctx.ttl_done)
return {STATUS.ok, cancelled, completed}
