-- delete_dead: remove a dead-lettered job for good.
-- include: qcount, index_move
-- KEYS[1] job hash  KEYS[2] errors list  KEYS[3] dead-letter zset
-- ARGV[1] job id  ARGV[2] script context (JSON, see server/store/context.py)
-- Post: the job's data and its dead-letter entry are gone.
-- Returns 1 if it was dead-lettered, else 0.
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then
  return 0
end
local queue = redis.call('HGET', KEYS[1], 'queue')
if queue then
  local ctx = cjson.decode(ARGV[2])
  qcount(ctx, queue, 'dead', nil)
  index_move(ctx, ARGV[1], queue, 'discarded', nil)
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
