-- queue_pause: pause or resume delivery from a queue.
-- include: emit, notify
-- KEYS[1] paused queues hash  KEYS[2] queue registry hash  KEYS[3] event stream
-- ARGV[1] now (ms)  ARGV[2] event log max length  ARGV[3] queue  ARGV[4] '1' pause | '0' resume
-- ARGV[5] script context (JSON, see server/store/context.py)  ARGV[6] the queue's available set (named in the wake-up)
-- Post: paused -> the queue is in the paused hash (since its first pause) and fetch skips
--       it; enqueue still accepts jobs. Resumed -> delivery restarts. The queue is
--       registered; queue.paused / queue.resumed emitted when the state changed.
-- Returns the paused-since time (ms) or '' when not paused.
redis.call('HSETNX', KEYS[2], ARGV[3], ARGV[1])
if ARGV[4] == '1' then
  if redis.call('HSETNX', KEYS[1], ARGV[3], ARGV[1]) == 1 then
    emit(KEYS[3], ARGV[2], 'queue.paused', '', ARGV[3], '', 'paused', ARGV[1], {})
  end
  return redis.call('HGET', KEYS[1], ARGV[3])
end
if redis.call('HDEL', KEYS[1], ARGV[3]) == 1 then
  emit(KEYS[3], ARGV[2], 'queue.resumed', '', ARGV[3], '', 'active', ARGV[1], {})
  notify(cjson.decode(ARGV[5]), ARGV[6])
end
return ''
