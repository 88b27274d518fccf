-- promote: make due scheduled and retryable jobs available, for several queues.
-- include: promote_due
-- KEYS[1] sequence counter  KEYS[2 + 2i] available zset of queue i, KEYS[3 + 2i] its delayed zset
-- ARGV[1] now (ms)  ARGV[2] script context (JSON, see server/store/context.py)  ARGV[3] max jobs per queue
-- Post: up to ARGV[3] due jobs per queue are ranked in their queue as available.
-- Returns the number of delayed entries handled.
local moved = 0
local ctx = cjson.decode(ARGV[2])
for i = 0, (#KEYS - 1) / 2 - 1 do
  moved = moved + promote_due(ctx, KEYS[2 + 2 * i], KEYS[3 + 2 * i], KEYS[1], ARGV[1], tonumber(ARGV[3]))
end
return moved
