-- Reply statuses: the first element of a script's reply. server/store/status.py mirrors this
-- table (a test checks that both sides agree); any other value is a bug, not a conflict.
local STATUS = {
  ok = 'ok',
  not_found = 'not_found',
  conflict = 'conflict',
  not_owner = 'not_owner',
  stale_lease = 'stale_lease',
  duplicate = 'duplicate',
  unique_conflict = 'unique_conflict',
  unique_existing = 'unique_existing',
  fired = 'fired',
  skipped = 'skipped',
  stale = 'stale',
  -- A report the state of the job makes moot (progress of a job no longer active).
  ignored = 'ignored',
}
