-- enqueue: store a new job and make it visible in its initial state.
-- KEYS[1] job hash  KEYS[2] available zset of the queue  KEYS[3] delayed zset of the queue
-- KEYS[4] queue registry hash  KEYS[5] sequence counter  KEYS[6] event stream  KEYS[7] expiring zset
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] job id  ARGV[4] type  ARGV[5] queue
-- ARGV[6] priority  ARGV[7] initial state (available | scheduled | pending)
-- ARGV[8] due time (ms) for scheduled jobs, else ''  ARGV[9] expires_at (ms) or ''
-- ARGV[10..] field, value pairs of the job hash
-- Pre:  the job key does not exist.
-- Post: hash written with state; available -> ranked in its queue, scheduled -> in the
--       delayed set; with an expiry -> in the expiring set; queue registered;
--       job.enqueued emitted (plus job.scheduled when scheduled).
-- Returns {'ok', enqueued_at or ''} | {'duplicate', existing state}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'duplicate', redis.call('HGET', KEYS[1], 'state') or ''}
end
local fields = {}
for i = 10, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
local enqueued_at = insert_job(
  {job = KEYS[1], available = KEYS[2], delayed = KEYS[3], queues = KEYS[4], sequence = KEYS[5],
   events = KEYS[6], expiring = KEYS[7]},
  {now = ARGV[1], maxlen = ARGV[2], id = ARGV[3], type = ARGV[4], queue = ARGV[5], priority = ARGV[6],
   state = ARGV[7], due = ARGV[8], expires = ARGV[9], fields = fields})
return {'ok', enqueued_at}
