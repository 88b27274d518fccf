-- include: int_str
-- Lease deadline and execution deadline folded into the active set's score:
-- the reaper wakes at whichever comes first.
local function active_score(lease_deadline, exec_deadline)
  local due = tonumber(lease_deadline)
  local exec = tonumber(exec_deadline)
  if exec and exec < due then
    due = exec
  end
  return int_str(due)
end
