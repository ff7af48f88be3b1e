"""The Lua scripts of the Redis counters (:mod:`aigw.limits.shared`).

Each runs atomically in Redis, so one script per admission is both the check and the
take for every limit of the call, across every gateway process: two processes can
never both take the last unit. Times come from Redis (``TIME``), so processes on
machines with different clocks agree.

Keys per scope (a key or a team), in this order: requests-per-minute TAT,
tokens-per-minute TAT, in-flight leases (sorted set: lease id -> expiry), held budget
reservations (hash: lease id -> nano-USD), spend per local day (hash: day ordinal ->
nano-USD). ``KEYS[1]`` is the marker set once the spend was seeded from the ledger.

Floats leave a script as strings (a Lua number becomes a Redis integer).
"""

from __future__ import annotations

KEYS_PER_SCOPE = 5
ADMIT_ARGS_PER_SCOPE = 9
SETTLE_ARGS_PER_SCOPE = 6

_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function fmt(x) return string.format('%.6f', x) end
local function debt_of(key)
  local tat = tonumber(redis.call('GET', key) or '0')
  local d = tat - now
  if d > 0 then return d end
  return 0
end
local function store(key, debt)
  if debt > 0 then
    redis.call('SET', key, fmt(now + debt), 'PX', math.ceil(debt * 1000) + 1000)
  else
    redis.call('DEL', key)
  end
end
local function period_spend(key, first, last)
  local kv = redis.call('HGETALL', key)
  local sum = 0
  for j = 1, #kv, 2 do
    local day = tonumber(kv[j])
    if day >= first and day < last then sum = sum + tonumber(kv[j + 1]) end
  end
  return sum
end
"""

# ARGV: lease id, tokens, lease seconds, scope count, then per scope: rpm, rpm
# capacity, tpm, tpm capacity (0: no such limit), max_parallel, budget (-1: none),
# worst-case cost, first and end day ordinals of the budget's period.
# Returns {'ok', now, debts...} | {'unseeded'} | {'budget', i, spent, reserved, now}
# | {'parallel', i} | {'rate', i, 'requests'|'tokens', now, debts...}; debts are the
# rpm and tpm debts (seconds) of each scope, after the take for 'ok'.
ADMIT = (
    _COMMON
    + """
local lease = ARGV[1]
local tokens = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local S = {}
for i = 1, n do
  local a = 4 + (i - 1) * 9
  local k = 1 + (i - 1) * 5
  S[i] = {
    rpm = tonumber(ARGV[a + 1]), rcap = tonumber(ARGV[a + 2]),
    tpm = tonumber(ARGV[a + 3]), tcap = tonumber(ARGV[a + 4]),
    par = tonumber(ARGV[a + 5]), budget = tonumber(ARGV[a + 6]),
    worst = tonumber(ARGV[a + 7]), worst_text = ARGV[a + 7],
    first = tonumber(ARGV[a + 8]), last = tonumber(ARGV[a + 9]),
    krpm = KEYS[k + 1], ktpm = KEYS[k + 2], kin = KEYS[k + 3], kheld = KEYS[k + 4],
    kspend = KEYS[k + 5],
  }
end
-- Leases of crashed processes expire: their slots and reservations come back.
for i = 1, n do
  local s = S[i]
  if s.par >= 0 or s.budget >= 0 then
    local dead = redis.call('ZRANGEBYSCORE', s.kin, '-inf', now)
    if #dead > 0 then
      redis.call('HDEL', s.kheld, unpack(dead))
      redis.call('ZREMRANGEBYSCORE', s.kin, '-inf', now)
    end
  end
end
-- Check everything first (budgets, in flight, rates, as the local engine does).
for i = 1, n do
  local s = S[i]
  if s.budget >= 0 then
    if redis.call('EXISTS', KEYS[1]) == 0 then return {'unseeded'} end
    local spent = period_spend(s.kspend, s.first, s.last)
    local reserved = 0
    local held = redis.call('HVALS', s.kheld)
    for j = 1, #held do reserved = reserved + tonumber(held[j]) end
    if spent + reserved + s.worst > s.budget then
      return {'budget', i, string.format('%d', spent), string.format('%d', reserved), fmt(now)}
    end
  end
end
for i = 1, n do
  local s = S[i]
  if s.par >= 0 and redis.call('ZCARD', s.kin) >= s.par then return {'parallel', i} end
end
local debts = {}
local longest, culprit, what = 0, 0, ''
for i = 1, n do
  local s = S[i]
  local rd, td = 0, 0
  if s.rpm > 0 then
    local iv = 60 / s.rpm
    local tau = s.rcap * iv
    rd = debt_of(s.krpm)
    local need = iv
    if need > tau then need = tau end
    local over = rd + need - tau
    if over > 0.000001 and over > longest then longest, culprit, what = over, i, 'requests' end
  end
  if s.tpm > 0 then
    local iv = 60 / s.tpm
    local tau = s.tcap * iv
    td = debt_of(s.ktpm)
    local need = tokens * iv
    if need > tau then need = tau end
    local over = td + need - tau
    if over > 0.000001 and over > longest then longest, culprit, what = over, i, 'tokens' end
  end
  s.rd, s.td = rd, td
end
if culprit > 0 then
  local out = {'rate', culprit, what, fmt(now)}
  for i = 1, n do
    out[#out + 1] = fmt(S[i].rd)
    out[#out + 1] = fmt(S[i].td)
  end
  return out
end
-- Every check passed: take.
local out = {'ok', fmt(now)}
for i = 1, n do
  local s = S[i]
  if s.par >= 0 or s.budget >= 0 then
    redis.call('ZADD', s.kin, now + ttl, lease)
    redis.call('PEXPIRE', s.kin, math.ceil(ttl * 1000) + 60000)
  end
  if s.budget >= 0 then
    redis.call('HSET', s.kheld, lease, s.worst_text)
    redis.call('PEXPIRE', s.kheld, math.ceil(ttl * 1000) + 60000)
  end
  if s.rpm > 0 then
    s.rd = s.rd + 60 / s.rpm
    store(s.krpm, s.rd)
  end
  if s.tpm > 0 then
    local charged = tokens
    if charged > s.tcap then charged = s.tcap end
    s.td = s.td + charged * 60 / s.tpm
    store(s.ktpm, s.td)
  end
  out[#out + 1] = fmt(s.rd)
  out[#out + 1] = fmt(s.td)
end
return out
"""
)

# ARGV: lease id, spend TTL seconds, scope count, then per scope: tpm interval (0:
# none), tokens to charge more (negative: give back), cost to add, its day ordinal,
# first and end day ordinals of the budget's period (0 0: no budget); then per provider
# quota charge to settle (its TAT key after the scopes' keys): interval, tokens more.
# Returns each budgeted scope's period spend (strings), in scope order.
SETTLE = (
    _COMMON
    + """
local lease = ARGV[1]
local keep = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local seeded = redis.call('EXISTS', KEYS[1]) == 1
local out = {}
for i = 1, n do
  local a = 3 + (i - 1) * 6
  local k = 1 + (i - 1) * 5
  local iv, delta = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  local cost, day = tonumber(ARGV[a + 3]), ARGV[a + 4]
  local first, last = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  redis.call('ZREM', KEYS[k + 3], lease)
  redis.call('HDEL', KEYS[k + 4], lease)
  if iv > 0 and delta ~= 0 then
    local d = debt_of(KEYS[k + 2]) + delta * iv
    if d < 0 then d = 0 end
    store(KEYS[k + 2], d)
  end
  -- Unseeded (Redis lost its data): the ledger has the cost; the next seed reads it.
  if cost > 0 and seeded then
    redis.call('HINCRBY', KEYS[k + 5], day, ARGV[a + 3])
    redis.call('EXPIRE', KEYS[k + 5], keep)
  end
  if last > 0 then out[#out + 1] = string.format('%d', period_spend(KEYS[k + 5], first, last)) end
end
-- Then provider quota tokens-per-minute charges settled to the real count: KEYS after
-- the scopes' (one TAT each), ARGV pairs (interval, tokens more or back).
local a = 3 + n * 6
for j = 1, #KEYS - n * 5 - 1 do
  local key = KEYS[1 + n * 5 + j]
  local iv, delta = tonumber(ARGV[a + 2 * j - 1]), tonumber(ARGV[a + 2 * j])
  local d = debt_of(key) + delta * iv
  if d < 0 then d = 0 end
  store(key, d)
end
return out
"""
)

# KEYS: the marker, then the spend hashes. ARGV[1]: JSON [[key index, day, nano-USD]...],
# ARGV[2]: spend TTL seconds. The first process to seed writes; later ones (and a
# second start of the same one) find the marker and change nothing.
SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
for _, row in ipairs(cjson.decode(ARGV[1])) do
  redis.call('HINCRBY', KEYS[row[1]], tostring(row[2]), string.format('%d', row[3]))
  redis.call('EXPIRE', KEYS[row[1]], tonumber(ARGV[2]))
end
redis.call('SET', KEYS[1], '1', 'EX', tonumber(ARGV[2]))
return 1
"""

# KEYS: in-flight sets; ARGV: lease seconds, then (key index, lease id) pairs. Moves
# the expiry of leases still running, so a long stream keeps its slot.
RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
for j = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[tonumber(ARGV[j])], 'XX', until_, ARGV[j + 1])
end
return 1
"""

# Provider quotas (:mod:`aigw.limits.shared_quotas`). KEYS per quota scope (a provider
# or a model on it): requests-per-minute TAT, tokens-per-minute TAT, paused-until.
# ARGV: tokens, share of the burst this priority may use, scope count, then per scope:
# rpm, rpm capacity, tpm, tpm capacity (0: no such limit).
# Returns {'ok', tokens charged per scope...} or {'wait', seconds}: the check and the
# take of every quota of one upstream call, for every gateway process, atomically.
QUOTA = (
    _COMMON
    + """
local tokens = tonumber(ARGV[1])
local share = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local longest = 0
for i = 1, n do
  local a = 3 + (i - 1) * 4
  local k = (i - 1) * 3
  local paused = tonumber(redis.call('GET', KEYS[k + 3]) or '0') - now
  if paused > longest then longest = paused end
  for _, lim in ipairs({{ARGV[a + 1], ARGV[a + 2], KEYS[k + 1], 1},
                        {ARGV[a + 3], ARGV[a + 4], KEYS[k + 2], tokens}}) do
    local per, cap = tonumber(lim[1]), tonumber(lim[2])
    if per > 0 and lim[4] > 0 then
      local iv = 60 / per
      local allowed = cap * iv * share
      local need = lim[4] * iv
      if need > allowed then need = allowed end
      local over = debt_of(lim[3]) + need - allowed
      if over > 0.000001 and over > longest then longest = over end
    end
  end
end
if longest > 0 then return {'wait', fmt(longest)} end
local out = {'ok'}
for i = 1, n do
  local a = 3 + (i - 1) * 4
  local k = (i - 1) * 3
  local rpm, tpm, tcap = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if rpm > 0 then store(KEYS[k + 1], debt_of(KEYS[k + 1]) + 60 / rpm) end
  local charged = 0
  if tpm > 0 and tokens > 0 then
    charged = tokens
    if charged > tcap then charged = tcap end
    store(KEYS[k + 2], debt_of(KEYS[k + 2]) + charged * 60 / tpm)
  end
  out[#out + 1] = fmt(charged)
end
return out
"""
)

# KEYS[1]: a model's paused-until; ARGV[1]: seconds. Extends the pause, never shortens
# it; returns 1 if the model was not paused before (so one process logs it).
PAUSE = (
    _COMMON
    + """
local until_ = now + tonumber(ARGV[1])
local was = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > was then
  redis.call('SET', KEYS[1], fmt(until_), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
if was > now then return 0 end
return 1
"""
)

# Circuit breakers (:mod:`aigw.routing.shared_health`). KEYS: the target's state hash
# (state, consecutive, opened_at), its window hash (c<bucket> calls, f<bucket>
# failures), the hash of open breakers (target -> opened_at, read at subscribe).
# ARGV: target, successes, failed (0/1), breaker_failures, breaker_min_calls,
# breaker_failure_ratio, breaker_window, breaker_cooldown, the pub/sub channel.
# Counts the outcomes of every process; opening or closing publishes
# ["open"|"closed", target, opened_at]. Returns {state, consecutive failures}.
BREAKER = (
    _COMMON
    + """
local target = ARGV[1]
local ok, failed = tonumber(ARGV[2]), tonumber(ARGV[3])
local limit, min_calls = tonumber(ARGV[4]), tonumber(ARGV[5])
local ratio, window, cooldown = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local bucket = math.floor(now / (window / 10))
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local function tally()
  local kv = redis.call('HGETALL', KEYS[2])
  local calls, fails = 0, 0
  for j = 1, #kv, 2 do
    local b = tonumber(string.sub(kv[j], 2))
    if bucket - b >= 10 then
      redis.call('HDEL', KEYS[2], kv[j])
    elseif string.sub(kv[j], 1, 1) == 'c' then
      calls = calls + tonumber(kv[j + 1])
    else
      fails = fails + tonumber(kv[j + 1])
    end
  end
  return calls, fails
end
local n = 0
if ok > 0 then
  redis.call('HSET', KEYS[1], 'consecutive', 0)
  redis.call('HINCRBY', KEYS[2], 'c' .. bucket, ok)
  if redis.call('HLEN', KEYS[2]) > 24 then tally() end
  if state ~= 'closed' then
    state = 'closed'
    redis.call('HSET', KEYS[1], 'state', state)
    redis.call('DEL', KEYS[2])  -- a fresh start: the failures that opened it are past
    redis.call('HDEL', KEYS[3], target)
    redis.call('PUBLISH', ARGV[9], cjson.encode({'closed', target, '0'}))
  end
end
if failed > 0 then
  n = redis.call('HINCRBY', KEYS[1], 'consecutive', 1)
  redis.call('HINCRBY', KEYS[2], 'c' .. bucket, 1)
  redis.call('HINCRBY', KEYS[2], 'f' .. bucket, 1)
  local open = false
  if state == 'open' then
    -- Past the cooldown a call is a probe: its failure opens the breaker again.
    open = now - tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0') >= cooldown
  elseif n >= limit then
    open = true
  else
    local calls, fails = tally()
    open = calls >= min_calls and fails >= ratio * calls
  end
  if open then
    state = 'open'
    redis.call('HSET', KEYS[1], 'state', state, 'opened_at', fmt(now))
    redis.call('HSET', KEYS[3], target, fmt(now))
    redis.call('PUBLISH', ARGV[9], cjson.encode({'open', target, fmt(now)}))
  end
end
local keep = math.ceil((window + cooldown) * 1000) + 60000
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PEXPIRE', KEYS[3], keep)
return {state, n}
"""
)
