-- admin_list_available: one page of the available jobs of every queue, in the order they became
-- available, read-only. There is no index of them over all queues (one would cost a sorted-set entry
-- per queued job): each queue's available set serves, merged. A queue's set is ordered by
-- the rank score (100 - priority) * 2^44 + sequence, so it holds one run per priority, each in sequence
-- order; the sequence counter is shared by all queues and taken when a job becomes available, so
-- merging every run by sequence gives the order over all queues.
-- include: type_matches
-- KEYS[1] queue registry (hash: queue name -> created_at)
-- ARGV[1] job hash key prefix  ARGV[2] available set key prefix
-- ARGV[3] lowest enqueued_at ('-inf' or ms)  ARGV[4] highest enqueued_at ('+inf' or ms)
-- ARGV[5] cursor sequence or ''  ARGV[6] page size  ARGV[7] '1' for ascending (oldest first)
-- ARGV[8] '' any, else the exact value of the first field  ARGV[9] '1' when ARGV[8] is a prefix
-- ARGV[10] most entries to examine  ARGV[11..] hash fields to return (none: only check the hash exists)
-- Pre:  none. The cursor job need not be available any more: the sequence alone places it.
-- Post: nothing changes. Entries whose hash is gone or not available any more are skipped.
-- Returns {available jobs of all queues, entries examined, next cursor sequence or '', next cursor id or '',
--          rows...}, each row {enqueued_at, id, the fields ('' when unset)...}. The time range filters
--          rows; it does not narrow the total.
local BAND = 17592186044416 -- 2^44: the width of one priority's run of scores (see the rank score include)
local job_prefix, available_prefix = ARGV[1], ARGV[2]
local low = ARGV[3] == '-inf' and -math.huge or tonumber(ARGV[3])
local high = ARGV[4] == '+inf' and math.huge or tonumber(ARGV[4])
local cursor = tonumber(ARGV[5])
local limit = tonumber(ARGV[6])
local ascending = ARGV[7] == '1'
local job_type, type_prefix = ARGV[8], ARGV[9] == '1'
local budget = tonumber(ARGV[10])
local fields = {}
for i = 11, #ARGV do
  fields[#fields + 1] = ARGV[i]
end
-- Read with the fields asked for: when the job became available (a hash written by an insert
-- that made it available at once has no enqueued_at: it is its created_at).
local read = {unpack(fields)}
read[#read + 1] = 'state'
read[#read + 1] = 'enqueued_at'
read[#read + 1] = 'created_at'
local CHUNK = 100

local function fmt(n)
  return string.format('%.0f', n)
end

-- The runs: one per queue and priority present, each a score range [base, base + BAND).
local runs = {}
local total = 0
for _, queue in ipairs(redis.call('HKEYS', KEYS[1])) do
  local key = available_prefix .. queue
  local count = redis.call('ZCARD', key)
  total = total + count
  local from = '-inf'
  while count > 0 do
    local first = redis.call('ZRANGEBYSCORE', key, from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #first == 0 then
      break
    end
    local base = math.floor(tonumber(first[2]) / BAND) * BAND
    runs[#runs + 1] = {key = key, base = base, buffer = {}, next = 1, done = false,
      last = cursor or (ascending and -1 or BAND)}
    from = fmt(base + BAND)
  end
end

-- The next `size` entries of a run after its last sequence read, in the direction of travel.
local function refill(run, size)
  local entries
  if ascending then
    entries = redis.call('ZRANGEBYSCORE', run.key, '(' .. fmt(run.base + run.last), '(' .. fmt(run.base + BAND),
      'WITHSCORES', 'LIMIT', 0, size)
  else
    entries = redis.call('ZREVRANGEBYSCORE', run.key, '(' .. fmt(run.base + run.last), '(' .. fmt(run.base - 1),
      'WITHSCORES', 'LIMIT', 0, size)
  end
  run.buffer, run.next = {}, 1
  for i = 1, #entries, 2 do
    run.buffer[#run.buffer + 1] = {entries[i], tonumber(entries[i + 1]) - run.base}
  end
  run.done = #entries < 2 * size
  if #entries > 0 then
    run.last = run.buffer[#run.buffer][2]
  end
end

-- A binary heap of the runs that have entries left, the run whose next entry comes first on top:
-- a page costs O(log runs) per entry, however many queues and priorities there are.
local heap = {}
local function before(a, b)
  local x, y = a.buffer[a.next][2], b.buffer[b.next][2]
  if ascending then
    return x < y
  end
  return x > y
end

local function push(run)
  heap[#heap + 1] = run
  local i = #heap
  while i > 1 do
    local parent = math.floor(i / 2)
    if not before(heap[i], heap[parent]) then
      break
    end
    heap[i], heap[parent] = heap[parent], heap[i]
    i = parent
  end
end

local function pop()
  local top = heap[1]
  heap[1] = heap[#heap]
  heap[#heap] = nil
  local i = 1
  while true do
    local first, left, right = i, 2 * i, 2 * i + 1
    if left <= #heap and before(heap[left], heap[first]) then
      first = left
    end
    if right <= #heap and before(heap[right], heap[first]) then
      first = right
    end
    if first == i then
      break
    end
    heap[i], heap[first] = heap[first], heap[i]
    i = first
  end
  return top
end

-- Each run's first entry only, to start: most runs may never be reached by this page.
for _, run in ipairs(runs) do
  refill(run, 1)
  if #run.buffer > 0 then
    push(run)
  end
end

-- The next entry in order ({id, sequence}), or nil when every run is exhausted.
local function take()
  if #heap == 0 then
    return nil
  end
  local run = pop()
  local entry = run.buffer[run.next]
  run.next = run.next + 1
  if run.next > #run.buffer and not run.done then
    refill(run, CHUNK)
  end
  if run.buffer[run.next] then
    push(run)
  end
  return entry
end

local rows = {}
local scanned = 0
local last_sequence, last_id = '', ''
local finished = false
while #rows < limit and scanned < budget do
  local entry = take()
  if entry == nil then
    finished = true
    break
  end
  local id, sequence = entry[1], entry[2]
  scanned = scanned + 1
  last_sequence, last_id = fmt(sequence), id
  local f = redis.call('HMGET', job_prefix .. id, unpack(read))
  local n = #fields
  local since = tonumber(f[n + 2] or f[n + 3])
  if f[n + 1] == 'available' and since and since >= low and since <= high and
      (n == 0 or (f[1] and type_matches(f[1], job_type, type_prefix))) then
    local row = {fmt(since), id}
    for j = 1, n do
      row[j + 2] = f[j] or ''
    end
    rows[#rows + 1] = row
  end
end
if finished then
  last_sequence, last_id = '', ''
end
local reply = {total, scanned, last_sequence, last_id}
for _, row in ipairs(rows) do
  reply[#reply + 1] = row
end
return reply
