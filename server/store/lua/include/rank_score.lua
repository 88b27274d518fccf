-- include: int_str
-- Ordering score within a queue: higher priority first, then FIFO.
-- (100 - priority) * 2^44 + sequence stays below 2^53, so it is exact.
local function rank_score(priority, sequence)
  return int_str((100 - tonumber(priority)) * 17592186044416 + sequence)
end
