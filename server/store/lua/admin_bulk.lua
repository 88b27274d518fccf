-- admin_bulk: retry or delete finished jobs, each atomically, in one call.
-- include: qcount, index_move, make_available, emit
-- KEYS[1] dead-letter zset  KEYS[2] sequence counter  KEYS[3] event stream
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] 'retry' or 'delete'
-- ARGV[4] script context (JSON, see server/store/context.py)  ARGV[5..] job ids
-- retry:  a discarded or cancelled job (not a workflow member) goes back to available with its
--         attempt counter reset, its retention lifted and its error history kept; job.enqueued emitted.
-- delete: a completed, discarded or cancelled job is removed with its error history.
-- Both leave the dead-letter set and the state indexes consistent.
-- Returns one entry per id: '' when done, else why not ('not_found' or 'state:<state>' or 'workflow').
local now, maxlen, action = ARGV[1], ARGV[2], ARGV[3]
local ctx = cjson.decode(ARGV[4])
local RETRYABLE = {discarded = true, cancelled = true}
local DELETABLE = {completed = true, discarded = true, cancelled = true}
local out = {}
for i = 5, #ARGV do
  local id = ARGV[i]
  local job_key = ctx.job .. id
  local f = redis.call('HMGET', job_key, 'state', 'type', 'queue', 'priority', 'workflow_id')
  local state, queue = f[1], f[3]
  local refusal = ''
  if not state then
    refusal = 'not_found'
  elseif action == 'retry' and not RETRYABLE[state] then
    refusal = 'state:' .. state
  elseif action == 'retry' and f[5] and f[5] ~= '' then
    refusal = 'workflow'
  elseif action == 'delete' and not DELETABLE[state] then
    refusal = 'state:' .. state
  end
  if refusal == '' then
    if redis.call('ZREM', KEYS[1], id) == 1 then
      qcount(ctx, queue, 'dead', nil)
    end
    if action == 'delete' then
      index_move(ctx, id, queue, state, nil, now)
      redis.call('DEL', job_key, ctx.errors .. id)
    else
      redis.call('PERSIST', job_key)
      redis.call('PERSIST', ctx.errors .. id)
      redis.call('HSET', job_key, 'attempt', 0, 'retried_at', now)
      redis.call('HDEL', job_key, 'completed_at', 'discarded_at', 'cancelled_at', 'worker_id', 'started_at')
      make_available(job_key, id, ctx.available .. queue, KEYS[2], f[4], now, ctx)
      qcount(ctx, queue, state, 'available', id, now)
      emit(KEYS[3], maxlen, 'job.enqueued', id, queue, f[2], 'available', now,
        {previous_state = state, reason = 'retried'})
    end
  end
  out[#out + 1] = refusal
end
return out
