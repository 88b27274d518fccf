-- include: csv, wf_cancel_job, wf_release, emit, retain
-- A workflow is a hash (state, counters) and a node hash with, per node i:
-- k:i kind (step | on_success | on_failure | on_complete), j:i its job id,
-- p:i dependencies and d:i dependents (comma-separated indices), w:i dependencies
-- not yet finished, s:i node state (waiting | ready | completed | failed | cancelled | skipped).
-- Member jobs of nodes still waiting sit in `pending` until released.
-- ctx (decoded from JSON): prefixes wf, nodes, job, errors, available, delayed and
-- retention ttl_done / ttl_cancelled (ms).
--
-- Record that node `start` finished with `outcome` and move the workflow on:
-- release dependents whose dependencies all completed, cancel those that can
-- no longer run, fire or skip batch callbacks, and finish the workflow when
-- every node is done.
local function wf_settle(ctx, workflow_id, start, outcome, now, events, maxlen, sequence_key)
  local wf_key = ctx.wf .. workflow_id
  local nodes_key = ctx.nodes .. workflow_id
  local work = {{start, outcome}}
  local i = 1
  while i <= #work do
    local node, result = work[i][1], work[i][2]
    i = i + 1
    local current = redis.call('HGET', nodes_key, 's:' .. node)
    if current == 'waiting' or current == 'ready' then
      redis.call('HSET', nodes_key, 's:' .. node, result)
      local kind = redis.call('HGET', nodes_key, 'k:' .. node)
      local job_id = redis.call('HGET', nodes_key, 'j:' .. node)
      if result == 'cancelled' or result == 'skipped' then
        wf_cancel_job(ctx, job_id, now, events, maxlen)
      end
      redis.call('HINCRBY', wf_key, 'done', 1)
      if kind == 'step' then
        redis.call('HINCRBY', wf_key, result == 'completed' and 'completed' or 'failed', 1)
      elseif result == 'failed' or result == 'cancelled' then
        redis.call('HINCRBY', wf_key, 'callbacks_failed', 1)
      end
      emit(events, maxlen, result == 'completed' and 'workflow.step_completed' or 'workflow.step_failed',
        job_id, '', '', result, now, {workflow_id = workflow_id, step = tonumber(node), kind = kind})
      for _, dependent in ipairs(csv(redis.call('HGET', nodes_key, 'd:' .. node))) do
        local dependent_kind = redis.call('HGET', nodes_key, 'k:' .. dependent)
        if dependent_kind == 'step' then
          if result == 'completed' then
            local left = redis.call('HINCRBY', nodes_key, 'w:' .. dependent, -1)
            if left == 0 and redis.call('HGET', nodes_key, 's:' .. dependent) == 'waiting' then
              wf_release(ctx, nodes_key, dependent, now, events, maxlen, sequence_key)
            end
          else
            work[#work + 1] = {dependent, 'cancelled'}
          end
        elseif redis.call('HINCRBY', nodes_key, 'w:' .. dependent, -1) == 0
            and redis.call('HGET', nodes_key, 's:' .. dependent) == 'waiting' then
          local failed = tonumber(redis.call('HGET', wf_key, 'failed')) or 0
          if dependent_kind == 'on_complete' or (dependent_kind == 'on_success' and failed == 0)
              or (dependent_kind == 'on_failure' and failed > 0) then
            wf_release(ctx, nodes_key, dependent, now, events, maxlen, sequence_key)
          else
            work[#work + 1] = {dependent, 'skipped'}
          end
        end
      end
    end
  end
  local w = redis.call('HMGET', wf_key, 'done', 'node_count', 'failed', 'callbacks_failed', 'state')
  if w[5] == 'running' and tonumber(w[1]) >= tonumber(w[2]) then
    local final = (tonumber(w[3]) > 0 or tonumber(w[4]) > 0) and 'failed' or 'completed'
    redis.call('HSET', wf_key, 'state', final, 'completed_at', now)
    emit(events, maxlen, 'workflow.' .. final, '', '', '', final, now, {workflow_id = workflow_id})
    retain(wf_key, nodes_key, ctx.ttl_done)
  end
end
