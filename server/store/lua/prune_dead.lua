-- prune_dead: dead-letter retention by age and by count.
-- include: qcount, index_move
-- KEYS[1] dead-letter zset
-- ARGV[1] oldest discarded_at kept (ms)  ARGV[2] max entries kept  ARGV[3] max removed per call
-- ARGV[4] job key prefix  ARGV[5] errors key prefix  ARGV[6] script context (JSON, see server/store/context.py)
-- Post: entries older than the cutoff, then the oldest beyond the count,
--       are removed with their job data, at most ARGV[3] per call.
-- Returns the number removed.
local budget = tonumber(ARGV[3])
local victims = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, budget)
local excess = redis.call('ZCARD', KEYS[1]) - #victims - tonumber(ARGV[2])
if excess > 0 and #victims < budget then
  local oldest = redis.call('ZRANGE', KEYS[1], #victims, #victims + math.min(excess, budget - #victims) - 1)
  for _, id in ipairs(oldest) do
    victims[#victims + 1] = id
  end
end
local ctx = cjson.decode(ARGV[6])
for _, id in ipairs(victims) do
  redis.call('ZREM', KEYS[1], id)
  local queue = redis.call('HGET', ARGV[4] .. id, 'queue')
  if queue then
    qcount(ctx, queue, 'dead', nil)
    index_move(ctx, id, queue, 'discarded', nil)
  end
  redis.call('DEL', ARGV[4] .. id, ARGV[5] .. id)
end
return #victims
