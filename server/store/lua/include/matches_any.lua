-- Whether an error type matches one of the newline-separated patterns of a job's
-- non_retryable_errors: an exact name, or a prefix followed by ".*".
local function matches_any(patterns, error_type)
  if error_type == '' or not patterns or patterns == '' then
    return false
  end
  for pattern in string.gmatch(patterns, '[^\n]+') do
    if pattern == error_type then
      return true
    end
    local prefix = string.sub(pattern, 1, -2)
    if string.sub(pattern, -2) == '.*' and string.sub(error_type, 1, #prefix) == prefix then
      return true
    end
  end
  return false
end
