/**
 * The Lua scripts of the Redis counter store. Each runs atomically in Redis: the check of every limit
 * of a request and its counting are one step, so that N replicas admit exactly the limit. Time is
 * Redis's own clock (`TIME`) unless the caller passes one (tests): replicas with skewed clocks still
 * agree on every window.
 *
 * Layout per key K: `count` window: sorted set K (member = admission id, score = time); `sum` window:
 * sorted set K, hash K:a (id -> amount) and string K:s (the total); `slots`: sorted set K (score =
 * lease end); budget: string K (spent). Every key expires when it can no longer matter.
 */

const NOW = `
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end`;

/** Fields of one admission or result, in one argument: fewer arguments for the client to encode. */
export const SEPARATOR = '\x1f';

const SPLIT = `
local function split(s)
  local t = {}
  local start = 1
  while true do
    local i = string.find(s, '\\31', start, true)
    if not i then t[#t + 1] = string.sub(s, start) return t end
    t[#t + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end`;

/**
 * Admissions in a batch (every admission the process asked for in one turn of its event loop: one
 * round trip for all of them), each checked and counted atomically, in order. KEYS: one key of the
 * gateway's hash slot (for Redis Cluster's routing). ARGV: now (or ''), slot lease ms, the number of
 * settle operations that come first (see SETTLE: the ends of earlier admissions ride along), then one
 * argument per admission: its id and five fields per check (key, kind: c count, s sum, l slots, b
 * budget; limit, window ms, amount), separated by SEPARATOR. Returns now, then one string per
 * admission: ok (1/0), refused check (1-based, 0 if none), retry at (ms, -1 if never), and remaining
 * and reset ms per check, separated the same way.
 */
export const ADMIT = `${NOW}
${SPLIT}
-- Numbers go to redis.call as the strings they came in, or formatted once per call: Lua formats a
-- number argument with printf on every call, a large part of the script's time.
local nowS = tostring(now)
local lease = tonumber(ARGV[2])
local leaseEnd = tostring(now + lease)
local leaseTtl = tostring(lease * 2)
local settles = tonumber(ARGV[3])
local out = { nowS }

local function settle(arg)
  local f = split(arg)
  local op, key, id = f[1], f[2], f[3]
  if op == 'r' then
    redis.call('ZREM', key, id)
  elseif op == 'w' then
    redis.call('ZADD', key, 'XX', leaseEnd, id)
    redis.call('PEXPIRE', key, leaseTtl)
  else
    local amount = tonumber(f[4])
    if redis.call('ZSCORE', key, id) then
      local old = tonumber(redis.call('HGET', key .. ':a', id) or '0')
      redis.call('HSET', key .. ':a', id, f[4])
      redis.call('INCRBY', key .. ':s', amount - old)
    end
  end
end
for a = 4, 3 + settles do settle(ARGV[a]) end

-- The start of each window length, as a score argument.
local sinceOf = {}
local function since(window)
  local s = sinceOf[window]
  if not s then
    s = tostring(now - window)
    sinceOf[window] = s
  end
  return s
end

local function trimSum(key, since)
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', since)
  if #old == 0 then return tonumber(redis.call('GET', key .. ':s') or '0') end
  local freed = 0
  for i = 1, #old, 500 do
    local part = {}
    for j = i, math.min(i + 499, #old) do part[#part + 1] = old[j] end
    local amounts = redis.call('HMGET', key .. ':a', unpack(part))
    for _, a in ipairs(amounts) do freed = freed + (tonumber(a) or 0) end
    redis.call('HDEL', key .. ':a', unpack(part))
  end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', since)
  return tonumber(redis.call('INCRBY', key .. ':s', -freed))
end

local function newestEnd(key, window)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last == 0 then return 0 end
  return math.max(0, tonumber(last[2]) + window - now)
end

for a = 4 + settles, #ARGV do
  local f = split(ARGV[a])
  local id = f[1]
  local n = (#f - 1) / 5
  local keys, kinds, limits, windows, amounts = {}, {}, {}, {}, {}
  for i = 1, n do
    local b = 1 + (i - 1) * 5
    keys[i] = f[b + 1]
    kinds[i] = f[b + 2]
    limits[i] = tonumber(f[b + 3])
    windows[i] = tonumber(f[b + 4])
    amounts[i] = tonumber(f[b + 5])
  end
  local remaining, reset, totals = {}, {}, {}
  local refused, retryAt = 0, 0
  for i = 1, n do
    local key, kind, limit, window, amount = keys[i], kinds[i], limits[i], windows[i], amounts[i]
    local at = nil
    if kind == 'c' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', since(window))
      local c = redis.call('ZCARD', key)
      remaining[i] = math.max(0, limit - c)
      if c + 1 > limit then
        local oldest = redis.call('ZRANGE', key, c - limit, c - limit, 'WITHSCORES')
        at = (#oldest == 0) and -1 or (tonumber(oldest[2]) + window)
      end
    elseif kind == 's' then
      local sum = trimSum(key, since(window))
      totals[i] = sum
      remaining[i] = math.max(0, limit - sum)
      if sum + amount > limit then
        at = -1
        if amount <= limit then
          local entries = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
          local freed = 0
          for j = 1, #entries, 2 do
            freed = freed + (tonumber(redis.call('HGET', key .. ':a', entries[j])) or 0)
            if sum - freed + amount <= limit then at = tonumber(entries[j + 1]) + window break end
          end
        end
      end
    elseif kind == 'l' then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', nowS)
      local c = redis.call('ZCARD', key)
      remaining[i] = math.max(0, limit - c)
      reset[i] = 0
      if c + 1 > limit then at = now + 1000 end
    else
      local spent = tonumber(redis.call('GET', key) or '0')
      local ttl = redis.call('PTTL', key)
      remaining[i] = math.max(0, limit - spent)
      reset[i] = (ttl > 0) and ttl or 0
      if spent >= limit then at = (ttl > 0) and (now + ttl) or -1 end
    end
    if at ~= nil and refused == 0 then refused = i retryAt = at end
  end
  if refused ~= 0 then
    -- Only a refusal reports when its windows reset (an admission resets them to the full window).
    for i = 1, n do
      if kinds[i] == 'c' or kinds[i] == 's' then reset[i] = newestEnd(keys[i], windows[i]) end
    end
  else
    for i = 1, n do
      local key, kind, limit = keys[i], kinds[i], limits[i]
      local b = 1 + (i - 1) * 5
      local windowS, amountS = f[b + 4], f[b + 5]
      if kind == 'c' then
        redis.call('ZADD', key, nowS, id)
        redis.call('PEXPIRE', key, windowS)
        remaining[i] = math.max(0, remaining[i] - 1)
        reset[i] = windowS
      elseif kind == 's' then
        local ka = key .. ':a'
        -- The total after this admission: what the check found plus the amount (one SET with its
        -- expiry, as INCRBY and PEXPIRE would leave it).
        local sum = totals[i] + amounts[i]
        redis.call('ZADD', key, nowS, id)
        redis.call('HSET', ka, id, amountS)
        redis.call('SET', key .. ':s', string.format('%d', sum), 'PX', windowS)
        redis.call('PEXPIRE', key, windowS)
        redis.call('PEXPIRE', ka, windowS)
        remaining[i] = math.max(0, limit - sum)
        reset[i] = windowS
      elseif kind == 'l' then
        redis.call('ZADD', key, leaseEnd, id)
        redis.call('PEXPIRE', key, leaseTtl)
        remaining[i] = math.max(0, remaining[i] - 1)
      end
    end
  end
  local r = { (refused == 0) and '1' or '0', tostring(refused), tostring(retryAt) }
  for i = 1, n do
    r[#r + 1] = tostring(remaining[i])
    r[#r + 1] = tostring(reset[i])
  end
  out[#out + 1] = table.concat(r, '\\31')
end
return out`;

/*
 * Settle operations (in ADMIT, before its admissions): `r`, key, id (take the admission out of a slot
 * set or count window); `c`, key, id, amount (a sum window's corrected amount); `w`, key, id (renew a
 * slot's lease), fields separated by SEPARATOR.
 */

/** KEYS: budgets. ARGV: amount, then a ttl in ms per key ('' for none), set when the key has none. */
export const SPEND = `
local amount = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('INCRBYFLOAT', key, amount)
  local ttl = ARGV[1 + i]
  if ttl ~= '' and redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ttl) end
end
return 1`;
