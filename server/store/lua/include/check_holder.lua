-- include: status
-- Checks that the caller holds the lease of an active job. `f` holds the
-- job's state, worker_id and lease_token. Returns nil or an error reply.
local function check_holder(f, worker, token)
  if not f[1] then
    return {STATUS.not_found}
  end
  if f[1] ~= 'active' then
    return {STATUS.conflict, f[1]}
  end
  if worker ~= '' and f[2] and f[2] ~= '' and f[2] ~= worker then
    return {STATUS.not_owner, f[2]}
  end
  if token ~= '' and token ~= (f[3] or '') then
    return {STATUS.stale_lease, f[3] or ''}
  end
  return nil
end
