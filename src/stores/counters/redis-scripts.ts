import { bucketMs, type CheckState, type CounterCheck } from './counter-store.js';

/**
 * The Lua scripts of the Redis counter store, and how their answers are read (`FieldReader`,
 * `admittedStates`, `refusedStates`). Each runs atomically in Redis: the check of every limit
 * of a request and its counting are one step, so that N replicas admit exactly the limit. Time is
 * Redis's own clock (`TIME`) unless the caller passes one (tests): replicas with skewed clocks still
 * agree on every window.
 *
 * Layout per key K: `count` and `sum` windows: hash K, field = bucket number (time / bucket length,
 * see `bucketMs`) -> the amount admitted in it, `t` -> the total of the live buckets, `o` -> the
 * oldest bucket that may still count, `n` -> the newest bucket added to; `slots`: sorted set K
 * (member = admission id, score = lease end); budget: string K (spent). Every key expires when it
 * can no longer matter. The work per admission is constant, however busy the window.
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

/** Between the records (settle operations, checks, admissions, results) of one argument or answer. */
export const RECORD = '\x1e';

const SPLIT = `
local function split(s, sep)
  local t = {}
  if s == '' then return t end
  local start = 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then t[#t + 1] = string.sub(s, start) return t end
    t[#t + 1] = string.sub(s, start, i - 1)
    start = i + 1
  end
end
local FIELD, RECORD = '\\31', '\\30'`;

/**
 * Admissions in a batch (every admission the process asked for in one turn of its event loop: one
 * round trip for all of them), each checked and counted atomically, in order. Each key is read once
 * per batch and written once at its end.
 *
 * KEYS: one key of the gateway's hash slot (for Redis Cluster's routing). ARGV: now (or ''), slot
 * lease ms; the settle operations (the ends of earlier admissions: `a`, key, bucket, difference: a
 * window's bucket corrected or taken back; `r`, key, ids: slots given back; `w`, key, ids: slots'
 * leases renewed); the batch's distinct checks (key, kind: c count, s sum, l slots, b budget; limit,
 * window ms); the admissions (its id, what it weighs under its `sum` checks (1 under the others), the
 * number of its array of checks); the arrays of checks (each the numbers of its checks; numbers are
 * 1-based). Each of the last four is one argument: records separated by RECORD, fields by SEPARATOR
 * (few arguments: less for the client to encode and for Redis to parse). Returns one string: now, then
 * per admission, after a RECORD, either `1` and the remaining value of each check, then the reset
 * (ms) of each budget check (an admission's windows reset a window and a bucket from now, its slots
 * at 0: the caller computes those), or `0`, the refused check (1-based), retry at (ms, -1 if never),
 * and the remaining value and reset ms of each check; fields separated by SEPARATOR.
 */
export const ADMIT = `${NOW}
${SPLIT}
-- Numbers go to redis.call as strings formatted once: Lua formats a number argument with printf on
-- every call, a large part of a script's time.
local nowS = tostring(now)
local lease = tonumber(ARGV[2])
local leaseEnd = tostring(now + lease)
local leaseTtl = tostring(lease * 2)
local out = { nowS }
local function int(x) return string.format('%d', x) end

for _, op in ipairs(split(ARGV[3], RECORD)) do
  local f = split(op, FIELD)
  local op, key = f[1], f[2]
  if op == 'r' then
    redis.call('ZREM', key, unpack(f, 3))
  elseif op == 'w' then
    local args = {}
    for j = 3, #f do
      args[#args + 1] = leaseEnd
      args[#args + 1] = f[j]
    end
    redis.call('ZADD', key, 'XX', unpack(args))
    redis.call('PEXPIRE', key, leaseTtl)
  else
    -- Only a bucket still held (not trimmed, its key not expired) is corrected.
    local o = redis.call('HGET', key, 'o')
    if o and tonumber(f[3]) >= tonumber(o) then
      redis.call('HINCRBY', key, f[3], f[4])
      redis.call('HINCRBY', key, 't', f[4])
    end
  end
end

local checks = {}
for c, text in ipairs(split(ARGV[4], RECORD)) do
  local f = split(text, FIELD)
  local window = tonumber(f[4])
  local size = math.max(1, math.ceil(window / 600))
  checks[c] = { key = f[1], kind = f[2], limit = tonumber(f[3]), window = window, size = size }
end

-- Each key's state, read at its first use in the batch, written back once at its end.
local states = {}

local function windowState(c)
  local key = c.key
  local st = states[key]
  if st then return st end
  local bucket = math.floor(now / c.size)
  -- The current bucket's amount is read with the totals: written back with them in one HSET.
  local v = redis.call('HMGET', key, 't', 'o', 'n', int(bucket))
  local total, first, newest = tonumber(v[1]) or 0, tonumber(v[2]), tonumber(v[3])
  local held = tonumber(v[4]) or 0
  local live = math.floor((now - c.window) / c.size)
  local dirty = false
  if first == nil then
    first, total, newest = live, 0, live - 1
  elseif first < live then
    if newest == nil or newest < live or live - first > 1200 then
      -- Every bucket has left: the key starts anew.
      redis.call('DEL', key)
      total, newest, held = 0, live - 1, 0
    else
      local gone = {}
      for b = first, live - 1 do gone[#gone + 1] = int(b) end
      for _, x in ipairs(redis.call('HMGET', key, unpack(gone))) do total = total - (tonumber(x) or 0) end
      redis.call('HDEL', key, unpack(gone))
    end
    first = live
    dirty = true
  end
  st = { total = total, first = first, newest = newest, bucket = bucket, held = held,
    added = 0, dirty = dirty }
  states[key] = st
  return st
end

local function otherState(c)
  local key = c.key
  local st = states[key]
  if st then return st end
  if c.kind == 'l' then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', nowS)
    -- members: the batch's new slots (lease end, id, ...), added with one ZADD at its end.
    st = { count = redis.call('ZCARD', key), added = false, members = {} }
  else
    local ttl = redis.call('PTTL', key)
    st = { spent = tonumber(redis.call('GET', key) or '0'), ttl = (ttl > 0) and ttl or 0 }
  end
  states[key] = st
  return st
end

-- When the oldest buckets have freed enough for amount more under the limit (-1: never).
local function fitsAt(c, st, amount)
  if amount > c.limit then return -1 end
  local names = {}
  for b = st.first, math.max(st.newest, st.bucket) do names[#names + 1] = int(b) end
  local amounts = redis.call('HMGET', c.key, unpack(names))
  local freed = 0
  for j, x in ipairs(amounts) do
    local b = st.first + j - 1
    freed = freed + (tonumber(x) or 0) + ((b == st.bucket) and st.added or 0)
    if st.total - freed + amount <= c.limit then return (b + 1) * c.size + c.window end
  end
  return -1
end

local function newestEnd(c, st)
  if st.newest < st.first or st.total <= 0 then return 0 end
  return math.max(0, (st.newest + 1) * c.size + c.window - now)
end

-- The batch's arrays of checks (most admissions share one): each a list of the checks above.
local plans = {}
for p, text in ipairs(split(ARGV[6], RECORD)) do
  local list = {}
  for i, number in ipairs(split(text, FIELD)) do list[i] = checks[tonumber(number)] end
  plans[p] = list
end

-- Per admission, the same tables rewritten (a table per admission is a large part of the time).
local sts, amounts, remaining, reset = {}, {}, {}, {}
for _, admission in ipairs(split(ARGV[5], RECORD)) do
  local f = split(admission, FIELD)
  local id, weight = f[1], tonumber(f[2])
  local cs = plans[tonumber(f[3])]
  local n = #cs
  local refused, retryAt = 0, 0
  for i = 1, n do
    local c = cs[i]
    local kind, limit = c.kind, c.limit
    local amount = (kind == 's') and weight or 1
    amounts[i] = amount
    local at = nil
    if kind == 'c' or kind == 's' then
      local st = windowState(c)
      sts[i] = st
      remaining[i] = math.max(0, limit - st.total)
      if st.total + amount > limit then at = fitsAt(c, st, amount) end
    elseif kind == 'l' then
      local st = otherState(c)
      sts[i] = st
      remaining[i] = math.max(0, limit - st.count)
      reset[i] = 0
      if st.count + 1 > limit then at = now + 1000 end
    else
      local st = otherState(c)
      sts[i] = st
      remaining[i] = math.max(0, limit - st.spent)
      reset[i] = st.ttl
      if st.spent >= limit then at = (st.ttl > 0) and (now + st.ttl) or -1 end
    end
    if at ~= nil and refused == 0 then refused = i retryAt = at end
  end
  if refused ~= 0 then
    -- Only a refusal reports when its windows clear (an admission resets them to the full window).
    for i = 1, n do
      local kind = cs[i].kind
      if kind == 'c' or kind == 's' then reset[i] = newestEnd(cs[i], sts[i]) end
    end
  else
    for i = 1, n do
      local c, st = cs[i], sts[i]
      local kind = c.kind
      if kind == 'c' or kind == 's' then
        st.total = st.total + amounts[i]
        st.added = st.added + amounts[i]
        st.newest = st.bucket
        st.dirty = true
        remaining[i] = math.max(0, c.limit - st.total)
      elseif kind == 'l' then
        local members = st.members
        members[#members + 1] = leaseEnd
        members[#members + 1] = id
        st.count = st.count + 1
        st.added = true
        remaining[i] = math.max(0, c.limit - st.count)
      end
    end
  end
  -- Fields go straight into the answer (one concat at the end). An admission's windows reset a window
  -- and a bucket from now and slots at 0, which the caller knows: only its remaining values are sent,
  -- then its budgets' resets.
  out[#out + 1] = RECORD
  if refused == 0 then
    out[#out + 1] = '1'
    for i = 1, n do
      out[#out + 1] = FIELD
      out[#out + 1] = remaining[i]
    end
    for i = 1, n do
      if cs[i].kind == 'b' then
        out[#out + 1] = FIELD
        out[#out + 1] = reset[i]
      end
    end
  else
    out[#out + 1] = '0'
    out[#out + 1] = FIELD
    out[#out + 1] = refused
    out[#out + 1] = FIELD
    out[#out + 1] = retryAt
    for i = 1, n do
      out[#out + 1] = FIELD
      out[#out + 1] = remaining[i]
      out[#out + 1] = FIELD
      out[#out + 1] = reset[i]
    end
  end
end

for c = 1, #checks do
  local ch = checks[c]
  local st = states[ch.key]
  if st and st ~= true then
    states[ch.key] = true
    if ch.kind == 'l' then
      if st.added then
        redis.call('ZADD', ch.key, unpack(st.members))
        redis.call('PEXPIRE', ch.key, leaseTtl)
      end
    elseif (ch.kind == 'c' or ch.kind == 's') and st.dirty then
      if st.added ~= 0 then
        redis.call('HSET', ch.key, int(st.bucket), int(st.held + st.added), 't', int(st.total),
          'o', int(st.first), 'n', int(st.newest))
        -- The key lives a window and two buckets past the first amount of its newest bucket (the
        -- later ones of that bucket leave before then): set once per bucket, not once per call.
        if st.held <= 0 then redis.call('PEXPIRE', ch.key, int(ch.window + 2 * ch.size)) end
      elseif st.total > 0 then
        redis.call('HSET', ch.key, 't', int(st.total), 'o', int(st.first), 'n', int(st.newest))
      end
    end
  end
end
return table.concat(out)`;

/** KEYS: budgets. ARGV: amount, then a ttl in ms per key ('' for none), set when the key has none. */
export const SPEND = `
local amount = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('INCRBYFLOAT', key, amount)
  local ttl = ARGV[1 + i]
  if ttl ~= '' and redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ttl) end
end
return 1`;

const SEPARATOR_CODE = SEPARATOR.charCodeAt(0);

/**
 * An admission's states from the script's answer: the remaining value of each check, then the reset of
 * each budget. Its windows reset when the bucket it was counted in leaves (a window and a bucket from
 * the bucket's start), its slots at 0.
 */
export function admittedStates(
  checks: readonly CounterCheck[],
  fields: FieldReader,
  now: number,
): CheckState[] {
  const states: CheckState[] = [];
  for (const c of checks) {
    let resetMs = 0;
    if (c.kind === 'count' || c.kind === 'sum') {
      const size = bucketMs(c.windowMs);
      resetMs = (Math.floor(now / size) + 1) * size + c.windowMs - now;
    }
    states.push({ remaining: fields.next(), resetMs });
  }
  for (let i = 0; i < checks.length; i++)
    if (checks[i]!.kind === 'budget') states[i]!.resetMs = fields.next();
  return states;
}

/** A refused admission's states from the script's answer: the remaining value and reset of each check. */
export function refusedStates(checks: readonly CounterCheck[], fields: FieldReader): CheckState[] {
  const states: CheckState[] = [];
  for (let j = 0; j < checks.length; j++) states.push({ remaining: fields.next(), resetMs: fields.next() });
  return states;
}

/**
 * The numbers of one record of the admission script's answer, read in order without splitting it:
 * integers digit by digit, anything else (a fraction, an exponent) by Number() on its text. A missing
 * field reads as NaN.
 */
export class FieldReader {
  private at = 0;

  constructor(private text: string) {}

  /** Starts on another record. */
  reset(text: string): void {
    this.text = text;
    this.at = 0;
  }

  next(): number {
    const { text } = this;
    const start = this.at;
    if (start > text.length) return Number.NaN;
    let i = start;
    let negative = false;
    if (text.charCodeAt(i) === 45) {
      negative = true;
      i++;
    }
    let value = 0;
    let digits = 0;
    for (; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === SEPARATOR_CODE) break;
      if (c < 48 || c > 57) {
        // Not a plain integer: read the whole field as JavaScript would.
        let end = text.indexOf(SEPARATOR, i);
        if (end < 0) end = text.length;
        this.at = end + 1;
        return Number(text.slice(start, end));
      }
      value = value * 10 + (c - 48);
      digits++;
    }
    this.at = i + 1;
    // Beyond 15 digits the sum above may round differently from Number().
    if (digits === 0 || digits > 15) return Number(text.slice(start, i));
    return negative ? -value : value;
  }
}
