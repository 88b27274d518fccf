-- wf_create: store a workflow and enqueue its ready steps, all or nothing.
-- include: insert_job, emit
-- KEYS[1] workflow hash  KEYS[2] workflow node hash  KEYS[3] event stream  KEYS[4] sequence counter
-- KEYS[5] queue registry  KEYS[6] expiring zset  KEYS[7] workflow index (zset: id -> created_at)
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] workflow id  ARGV[4] name  ARGV[5] type
-- ARGV[6] workflow context (JSON, see server/store/context.py)
-- ARGV[7] nodes (JSON array): {id, kind, deps: [i], dependents: [i], job: {id, type, queue, priority,
--         state, due, expires, rate, concurrency, fields: [field, value, ...]}}; a node without dependencies
--         has state available or scheduled, every other one pending.
-- Pre:  the workflow id is new.
-- Post: every member job exists (pending ones wait for their dependencies); the node
--       table and counters are stored; workflow.started emitted.
-- Returns the number of nodes.
local ctx = cjson.decode(ARGV[6])
local nodes = cjson.decode(ARGV[7])
local steps = 0
for index, node in ipairs(nodes) do
  local i = tostring(index - 1)
  local job = node.job
  insert_job(
    {job = ctx.job .. job.id, available = ctx.available .. job.queue, delayed = ctx.delayed .. job.queue,
     queues = KEYS[5], sequence = KEYS[4], events = KEYS[3], expiring = KEYS[6]},
    {now = ARGV[1], maxlen = ARGV[2], id = job.id, type = job.type, queue = job.queue, priority = job.priority,
     state = job.state, due = job.due, expires = job.expires, rate = job.rate, concurrency = job.concurrency,
     fields = job.fields, ctx = ctx})
  redis.call('HSET', KEYS[2],
    'i:' .. i, node.id,
    'k:' .. i, node.kind,
    'j:' .. i, job.id,
    'p:' .. i, table.concat(node.deps, ','),
    'd:' .. i, table.concat(node.dependents, ','),
    'w:' .. i, #node.deps,
    's:' .. i, #node.deps == 0 and 'ready' or 'waiting')
  if node.kind == 'step' then
    steps = steps + 1
  end
end
redis.call('HSET', KEYS[1], 'id', ARGV[3], 'name', ARGV[4], 'type', ARGV[5], 'state', 'running',
  'created_at', ARGV[1], 'started_at', ARGV[1], 'node_count', #nodes, 'step_count', steps,
  'done', 0, 'completed', 0, 'failed', 0, 'callbacks_failed', 0)
redis.call('ZADD', KEYS[7], ARGV[1], ARGV[3])
emit(KEYS[3], ARGV[2], 'workflow.started', '', '', '', 'running', ARGV[1],
  {workflow_id = ARGV[3], workflow_type = ARGV[5], steps = steps})
return #nodes
