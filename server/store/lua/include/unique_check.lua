-- include: status, wf_cancel_job
-- Uniqueness check of a job about to be inserted. Returns nil to go ahead (after
-- cancelling the job it replaces, if any), or {'unique_conflict' | 'unique_existing',
-- existing id, existing state} when the existing job stands.
local function unique_check(ctx, a, events, maxlen)
  if a.unique_fp == '' then
    return nil
  end
  local existing = redis.call('GET', ctx.unique .. a.unique_fp)
  if not existing then
    return nil
  end
  local existing_key = ctx.job .. existing
  local state = redis.call('HGET', existing_key, 'state')
  if not state or not string.find(',' .. a.unique_states .. ',', ',' .. state .. ',', 1, true) then
    return nil
  end
  if a.unique_action == 'reject' then
    return {STATUS.unique_conflict, existing, state}
  end
  if a.unique_action == 'ignore' then
    return {STATUS.unique_existing, existing, state}
  end
  if a.unique_action == 'replace_except_schedule' and state == 'scheduled' then
    a.state = 'scheduled'
    a.due = redis.call('HGET', existing_key, 'scheduled_at')
    a.fields[#a.fields + 1] = 'scheduled_at'
    a.fields[#a.fields + 1] = a.due
  end
  wf_cancel_job(ctx, existing, a.now, events, maxlen)
  return nil
end
