-- admin_list_jobs: one page of an index of hashes (a job state index, see include/index_move.lua, a
-- queue's available set, the active set, or the workflow index), read-only.
-- include: type_matches
-- KEYS[1] the index (zset: id -> score; a time in ms for the state indexes)
-- ARGV[1] hash key prefix (job or workflow)  ARGV[2] lowest score ('-inf' or ms)  ARGV[3] highest score ('+inf' or ms)
-- ARGV[4] cursor score or ''  ARGV[5] cursor job id or ''  ARGV[6] page size  ARGV[7] '1' for ascending
-- ARGV[8] '' any, else the exact value of the first field  ARGV[9] '1' when ARGV[8] is a prefix
-- ARGV[10] most index entries to examine  ARGV[11] '' any, else the exact value of the second field
-- ARGV[12..] hash fields to return (none: only check the hash exists)
-- Pre:  none. The cursor entry need not be in the index any more (its job may have moved on).
-- Post: nothing changes. Entries whose hash is gone (retention) are skipped.
-- Returns {total in the score range, entries examined, next cursor score or '', next cursor id or '',
--          rows...}, each row {score, id, the fields ('' when unset)...}.
local key = KEYS[1]
local low, high = ARGV[2], ARGV[3]
local ascending = ARGV[7] == '1'
local limit = tonumber(ARGV[6])
local budget = tonumber(ARGV[10])
local job_type, type_prefix = ARGV[8], ARGV[9] == '1'
local second = ARGV[11]
local total = redis.call('ZCOUNT', key, low, high)
local fields = {}
for i = 12, #ARGV do
  fields[#fields + 1] = ARGV[i]
end

-- Rank (in the direction of travel) of the first entry after the cursor.
local function start_rank()
  if ARGV[4] == '' then
    if ascending then
      return redis.call('ZCOUNT', key, '-inf', '(' .. low)
    end
    return redis.call('ZCOUNT', key, '(' .. high, '+inf')
  end
  local score, id = ARGV[4], ARGV[5]
  local current = redis.call('ZSCORE', key, id)
  if current and tonumber(current) == tonumber(score) then
    if ascending then
      return redis.call('ZRANK', key, id) + 1
    end
    return redis.call('ZREVRANK', key, id) + 1
  end
  -- The cursor job left the index: count what sorts before its old place. Ties
  -- (same score) are ordered by id, ascending.
  local before
  if ascending then
    before = redis.call('ZCOUNT', key, '-inf', '(' .. score)
  else
    before = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  end
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', key, score, score)) do
    if (ascending and member < id) or (not ascending and member > id) then
      before = before + 1
    end
  end
  return before
end

local rows = {}
local scanned = 0
local rank = start_rank()
local last_score, last_id = '', ''
local finished = false
local chunk = 100
while #rows < limit and scanned < budget and not finished do
  local entries
  if ascending then
    entries = redis.call('ZRANGE', key, rank, rank + chunk - 1, 'WITHSCORES')
  else
    entries = redis.call('ZREVRANGE', key, rank, rank + chunk - 1, 'WITHSCORES')
  end
  if #entries == 0 then
    finished = true
  end
  for i = 1, #entries, 2 do
    local id, score = entries[i], entries[i + 1]
    local s = tonumber(score)
    if (ascending and high ~= '+inf' and s > tonumber(high)) or (not ascending and low ~= '-inf' and s < tonumber(low)) then
      finished = true
      break
    end
    scanned = scanned + 1
    rank = rank + 1
    last_score, last_id = score, id
    local f
    if #fields > 0 then
      f = redis.call('HMGET', ARGV[1] .. id, unpack(fields))
    else
      f = {redis.call('EXISTS', ARGV[1] .. id) == 1 and '' or false}
    end
    if f[1] and type_matches(f[1], job_type, type_prefix) and (second == '' or f[2] == second) then
      local row = {score, id}
      for j = 1, #fields do
        row[j + 2] = f[j] or ''
      end
      rows[#rows + 1] = row
    end
    if #rows >= limit or scanned >= budget then
      break
    end
  end
end
if finished then
  last_score, last_id = '', ''
end
local reply = {total, scanned, last_score, last_id}
for _, row in ipairs(rows) do
  reply[#reply + 1] = row
end
return reply
