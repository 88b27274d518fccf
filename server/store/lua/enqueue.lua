-- enqueue: store a new job and make it visible in its initial state.
-- KEYS[1] job hash            KEYS[2] available zset of the queue
-- KEYS[3] delayed zset         KEYS[4] queue registry hash
-- KEYS[5] sequence counter     KEYS[6] event stream
-- KEYS[7] expiring zset
-- ARGV[1] now (ms)             ARGV[2] event log max length
-- ARGV[3] job id  ARGV[4] type  ARGV[5] queue  ARGV[6] priority
-- ARGV[7] initial state (available | scheduled | pending)
-- ARGV[8] due time (ms) for scheduled jobs, else ''
-- ARGV[9] expires_at (ms) or ''
-- ARGV[10..] field, value pairs of the job hash
-- Pre:  the job key does not exist.
-- Post: hash written with state; available -> ranked in its queue,
--       scheduled -> in the delayed set; with an expiry -> in the expiring set;
--       queue registered; job.enqueued emitted (plus job.scheduled when scheduled).
-- Returns {'ok', enqueued_at or ''} | {'duplicate', existing state}.
local now = ARGV[1]
local state = ARGV[7]
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'duplicate', redis.call('HGET', KEYS[1], 'state') or ''}
end
local fields = {}
for i = 10, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
fields[#fields + 1] = 'state'
fields[#fields + 1] = state
local enqueued_at = ''
if state == 'available' then
  enqueued_at = now
  fields[#fields + 1] = 'enqueued_at'
  fields[#fields + 1] = now
end
redis.call('HSET', KEYS[1], unpack(fields))
if state == 'available' then
  local sequence = redis.call('INCR', KEYS[5])
  redis.call('ZADD', KEYS[2], rank_score(ARGV[6], sequence), ARGV[3])
elseif state == 'scheduled' then
  redis.call('ZADD', KEYS[3], ARGV[8], ARGV[3])
end
if ARGV[9] ~= '' then
  redis.call('ZADD', KEYS[7], ARGV[9], ARGV[3])
end
redis.call('HSETNX', KEYS[4], ARGV[5], now)
emit(KEYS[6], ARGV[2], 'job.enqueued', ARGV[3], ARGV[5], ARGV[4], state, now,
  {priority = tonumber(ARGV[6])})
if state == 'scheduled' then
  emit(KEYS[6], ARGV[2], 'job.scheduled', ARGV[3], ARGV[5], ARGV[4], state, now,
    {scheduled_at = tonumber(ARGV[8])})
end
return {'ok', enqueued_at}
