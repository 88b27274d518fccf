-- A job to insert, from the JSON array server.store.new_jobs.insert_entry builds (all strings):
-- id, type, queue, priority, state, due, expires, rate, concurrency, unique fingerprint,
-- unique on_conflict, unique states (comma-separated), unique period (ms), then the
-- hash's field/value pairs.
local JOB_HEADER = 13
local function job_from_list(list, ctx, now, maxlen)
  local fields = {}
  for i = JOB_HEADER + 1, #list do
    fields[#fields + 1] = list[i]
  end
  return {now = now, maxlen = maxlen, ctx = ctx, id = list[1], type = list[2],
    queue = list[3], priority = list[4], state = list[5], due = list[6],
    expires = list[7], rate = list[8], concurrency = list[9],
    unique_fp = list[10], unique_action = list[11], unique_states = list[12],
    unique_period = list[13], fields = fields}
end
