/**
 * The Lua of the Redis TTL store: one script per verb, so each verb is atomic in Redis (a script
 * runs alone) and N replicas behave as one. Every script touches only keys of one hash slot: the
 * keys it is given, plus, for sessions, keys it derives from a base it is given that carries the
 * same `{tag}`. ioredis's `defineCommand` sends EVALSHA and falls back to EVAL on NOSCRIPT.
 *
 * Whose clock (see redis.ts): every absolute instant is judged against ARGV `now`, the caller's
 * pinned reading; each value keeps its own end as `exp` (caller's clock) because a key Redis has
 * not yet expired may already be over for the caller. How long a key is kept is PEXPIRE with a
 * duration, run by Redis's clock. Numbers are unix ms, exact in Lua's doubles up to 2^53; they are
 * written with %.0f because tostring() would print 1.7e+12.
 */

/** Shared helpers, prepended to every script. */
const PRELUDE = `
local function fmt(n) return string.format('%.0f', n) end
local function num(s) if s then return tonumber(s) end return nil end
`;

export interface ScriptSource {
  readonly keys: number;
  readonly lua: string;
}

const script = (keys: number, body: string): ScriptSource => ({ keys, lua: PRELUDE + body });

export const SCRIPTS = {
  /**
   * KEYS: otp (HASH step, exp). ARGV: step ('' when no code matched), now, keepMs → 1 accepted, 0 not.
   * Forward-only: accepted when nothing live is kept or the kept step is older. With no step it
   * reads all the same, so a wrong code costs what a replay does.
   */
  useOtpStep: script(1, `
local kept = redis.call('HMGET', KEYS[1], 'step', 'exp')
if ARGV[1] == '' then return 0 end
local now = tonumber(ARGV[2])
if kept[1] and num(kept[2]) and num(kept[2]) > now and tonumber(kept[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'step', ARGV[1], 'exp', fmt(now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`),

  /** KEYS: challenge (HASH v, exp). ARGV: value, now, keepMs → 0. Replaces whatever was kept. */
  putChallenge: script(1, `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'exp', fmt(tonumber(ARGV[2]) + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
`),

  /**
   * KEYS: challenge. ARGV: now → the value, or false when none is live. Read and deleted in one
   * script, so of N takers one gets it; an expired one is deleted all the same.
   */
  takeChallenge: script(1, `
local s = redis.call('HMGET', KEYS[1], 'v', 'exp')
redis.call('DEL', KEYS[1])
if s[1] and num(s[2]) and num(s[2]) > tonumber(ARGV[1]) then return s[1] end
return false
`),

  /**
   * KEYS: challenge. ARGV: now → the value, or false when none is live. Reads only: the key's own
   * PEXPIRE removes it, and the exp field judges it by the caller's clock like takeChallenge.
   */
  peekChallenge: script(1, `
local s = redis.call('HMGET', KEYS[1], 'v', 'exp')
if s[1] and num(s[2]) and num(s[2]) > tonumber(ARGV[1]) then return s[1] end
return false
`),

  /** KEYS: one key (a factor's used steps, a subject's ladder) → forgotten. */
  forget: script(1, `
redis.call('DEL', KEYS[1])
return 0
`),

  /** KEYS: lock (HASH fails, level, lockedUntil, exp). ARGV: now → ms left on the lock. */
  lockRemainingMs: script(1, `
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'lockedUntil', 'exp')
if not (num(s[2]) and num(s[2]) > now and num(s[1])) then return 0 end
local left = tonumber(s[1]) - now
if left > 0 then return left end
return 0
`),

  /**
   * KEYS: lock. ARGV: now, maxFailures, findTimeMs, backoffMs[1..n] → { lockedNow 0|1, retryAfterMs,
   * level, lockedUntil }. nextLockState (lock-ladder.ts) line for line; the tests hold the two to
   * the same 200-step history. `fails` is the window's failure instants, comma-separated.
   */
  recordLockFailure: script(1, `
local now, maxFailures, findTime = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rungs = #ARGV - 3
local s = redis.call('HMGET', KEYS[1], 'fails', 'level', 'lockedUntil', 'exp')
local before = nil
if num(s[4]) and num(s[4]) > now and num(s[2]) and num(s[3]) then
  local fails = {}
  for t in string.gmatch(s[1] or '', '[^,]+') do fails[#fails + 1] = tonumber(t) end
  before = { fails = fails, level = tonumber(s[2]), lockedUntil = tonumber(s[3]) }
end
-- forgotten(): a past lock and its probation, or every failure of the window, are over.
local current = before
if before then
  local gone
  if before.level > 0 then
    gone = now >= before.lockedUntil + findTime
  else
    gone = true
    for _, t in ipairs(before.fails) do if now - t < findTime then gone = false end end
  end
  if gone then current = nil end
end
-- A failure during a lock was never evaluated: it changes nothing.
if current and current.lockedUntil > now then
  return { 0, current.lockedUntil - now, current.level, current.lockedUntil }
end
local level = 0
local recent = {}
if current then
  level = current.level
  for _, t in ipairs(current.fails) do if now - t < findTime then recent[#recent + 1] = t end end
end
recent[#recent + 1] = now
local after
if level > 0 or #recent >= maxFailures then
  local rung = tonumber(ARGV[4 + math.min(level, rungs - 1)])
  after = { fails = {}, level = level + 1, lockedUntil = now + rung }
else
  local kept = {}
  for i = math.max(1, #recent - maxFailures + 1), #recent do kept[#kept + 1] = recent[i] end
  local lockedUntil = 0
  if current then lockedUntil = current.lockedUntil end
  after = { fails = kept, level = level, lockedUntil = lockedUntil }
end
local retryAfter = 0
if after.lockedUntil > now then retryAfter = after.lockedUntil - now end
local lockedNow = 0
if retryAfter > 0 and (before == nil or before.lockedUntil <= now) then lockedNow = 1 end
-- lockStateTtlMs(): to the end of the window, or of the lock plus probation.
local keepUntil
if after.level > 0 then
  keepUntil = after.lockedUntil + findTime
else
  keepUntil = now
  for _, t in ipairs(after.fails) do if t > keepUntil then keepUntil = t end end
  keepUntil = keepUntil + findTime
end
local ttl = math.max(1, keepUntil - now)
local written = {}
for i, t in ipairs(after.fails) do written[i] = fmt(t) end
redis.call('HSET', KEYS[1], 'fails', table.concat(written, ','), 'level', fmt(after.level), 'lockedUntil', fmt(after.lockedUntil), 'exp', fmt(now + ttl))
redis.call('PEXPIRE', KEYS[1], fmt(ttl))
return { lockedNow, retryAfter, after.level, after.lockedUntil }
`),

  /**
   * KEYS: the active-locks ZSET (one for all subjects). ARGV: lockedUntil, member, lockMs. Run after
   * a lock starts; the set lives as long as its longest lock.
   */
  noteLock: script(1, `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 0
`),

  /** KEYS: the active-locks ZSET. ARGV: now → locks ending after now; the ended are trimmed. */
  activeLocks: script(1, `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
`),

  /**
   * KEYS: fail (HASH failures, [blockedUntil], exp). ARGV: now, maxFailures, findTimeMs, blockMs →
   * { failures, blockedNow 0|1, blockedUntil }. The window is fixed from its first failure; a
   * failure while blocked changes nothing.
   */
  recordFailure: script(1, `
local now, maxFailures, findTime, block = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 'failures', 'blockedUntil', 'exp')
local live = num(s[3]) and num(s[3]) > now and num(s[1])
local failures = 0
if live then
  failures = tonumber(s[1])
  local blockedUntil = num(s[2])
  if blockedUntil and blockedUntil > now then return { failures, 0, blockedUntil } end
end
failures = failures + 1
redis.call('DEL', KEYS[1])
if failures >= maxFailures then
  local blockedUntil = now + block
  redis.call('HSET', KEYS[1], 'failures', fmt(failures), 'blockedUntil', fmt(blockedUntil), 'exp', fmt(blockedUntil))
  redis.call('PEXPIRE', KEYS[1], fmt(block))
  return { failures, 1, blockedUntil }
end
local windowEnd = now + findTime
if live then windowEnd = tonumber(s[3]) end
redis.call('HSET', KEYS[1], 'failures', fmt(failures), 'exp', fmt(windowEnd))
redis.call('PEXPIRE', KEYS[1], fmt(windowEnd - now))
return { failures, 0, 0 }
`),

  /** KEYS: fail. ARGV: now → blockedUntil, or 0 when not blocked at now. */
  blockedUntil: script(1, `
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'blockedUntil', 'exp')
if num(s[2]) and num(s[2]) > now and num(s[1]) and num(s[1]) > now then return tonumber(s[1]) end
return 0
`),

  /**
   * KEYS: drift (HASH s, exp). ARGV: seconds ('null' for a wrong code), now, keepMs → the previous
   * reading as { 0 } none, { 1 } null, { 2, seconds }.
   */
  swapDriftReading: script(1, `
local now = tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 's', 'exp')
local previous = { 0 }
if s[1] and num(s[2]) and num(s[2]) > now then
  if s[1] == 'null' then previous = { 1 } else previous = { 2, tonumber(s[1]) } end
end
redis.call('HSET', KEYS[1], 's', ARGV[1], 'exp', fmt(now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return previous
`),

  /**
   * KEYS: rate (HASH n, exp). ARGV: now, windowMs, limit → { count, resetAt }. A window that has
   * ended starts over at 1; else the count goes up by one, stopping at limit + 1 (refused).
   */
  takeToken: script(1, `
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'n', 'exp')
if num(s[1]) and num(s[2]) and num(s[2]) > now then
  local n = math.min(tonumber(s[1]) + 1, limit + 1)
  redis.call('HSET', KEYS[1], 'n', fmt(n))
  return { n, tonumber(s[2]) }
end
redis.call('HSET', KEYS[1], 'n', '1', 'exp', fmt(now + window))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return { 1, now + window }
`),

  /**
   * KEYS: the subject's sessions ZSET (member hash, score expiresAt), the new session's HASH.
   * ARGV: hash, subject, method, mfaTime, issuedAt, expiresAt, maxPerSubject, now, session key base
   * → { 0 } when the hash is taken, else { 1, evicted hashes… }. Expired sessions go first; then,
   * beyond the cap, the others in SQLite's order (expiresAt desc, issuedAt desc, hash asc) past the
   * first cap − 1: never the one just issued.
   */
  issueSession: script(2, `
local now, base = tonumber(ARGV[8]), ARGV[9]
for _, h in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[8])) do redis.call('DEL', base .. h) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[8])
local taken = redis.call('HGET', KEYS[2], 'expiresAt')
if taken and tonumber(taken) > now then return { 0 } end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'subject', ARGV[2], 'method', ARGV[3], 'mfaTime', ARGV[4], 'issuedAt', ARGV[5], 'expiresAt', ARGV[6])
redis.call('PEXPIRE', KEYS[2], fmt(tonumber(ARGV[6]) - now))
redis.call('ZADD', KEYS[1], ARGV[6], ARGV[1])
local others = {}
local listed = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #listed, 2 do
  if listed[i] ~= ARGV[1] then
    others[#others + 1] = { hash = listed[i], expiresAt = tonumber(listed[i + 1]), issuedAt = num(redis.call('HGET', base .. listed[i], 'issuedAt')) or 0 }
  end
end
local keep = tonumber(ARGV[7]) - 1
local result = { 1 }
if #others > keep then
  table.sort(others, function(a, b)
    if a.expiresAt ~= b.expiresAt then return a.expiresAt > b.expiresAt end
    if a.issuedAt ~= b.issuedAt then return a.issuedAt > b.issuedAt end
    return a.hash < b.hash
  end)
  for i = keep + 1, #others do
    redis.call('DEL', base .. others[i].hash)
    redis.call('ZREM', KEYS[1], others[i].hash)
    result[#result + 1] = others[i].hash
  end
end
-- The list lives as long as its longest-lived session.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], fmt(tonumber(last[2]) - now))
return result
`),

  /**
   * KEYS: code (HASH h, n, exp). ARGV: hash, now, ttlMs → 0. A new code replaces the old one and
   * its count of wrong attempts.
   */
  putSentCode: script(1, `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'n', '0', 'exp', fmt(tonumber(ARGV[2]) + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 0
`),

  /**
   * KEYS: code. ARGV: now, maxAttempts, hashes… → 2 used (deleted), 1 wrong (counted; deleted at
   * maxAttempts), 0 no live code. Every candidate is compared, byte by byte without stopping at the
   * first difference (Redis's Lua has the bit library), whatever is kept.
   */
  useSentCode: script(1, `
local function same(a, b)
  if #a ~= #b then return false end
  local d = 0
  for i = 1, #a do d = bit.bor(d, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return d == 0
end
local now = tonumber(ARGV[1])
local s = redis.call('HMGET', KEYS[1], 'h', 'n', 'exp')
local matched = false
for i = 3, #ARGV do if same(s[1] or '', ARGV[i]) then matched = true end end
if not (s[1] and num(s[2]) and num(s[3]) and num(s[3]) > now) then return 0 end
if matched then
  redis.call('DEL', KEYS[1])
  return 2
end
local n = tonumber(s[2]) + 1
if n >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) else redis.call('HSET', KEYS[1], 'n', fmt(n)) end
return 1
`),

  /** KEYS: the session's HASH. ARGV: subject, now → { method, mfaTime, issuedAt, expiresAt } or nil. */
  getSession: script(1, `
local s = redis.call('HMGET', KEYS[1], 'subject', 'method', 'mfaTime', 'issuedAt', 'expiresAt')
if s[1] ~= ARGV[1] or not num(s[5]) or tonumber(s[5]) <= tonumber(ARGV[2]) then return false end
return { s[2], s[3], s[4], s[5] }
`),

  /** KEYS: the session's HASH, the subject's ZSET. ARGV: hash, subject, now → 1 for the one call that deleted it. */
  deleteSession: script(2, `
local s = redis.call('HMGET', KEYS[1], 'subject', 'expiresAt')
if s[1] ~= ARGV[2] or not num(s[2]) or tonumber(s[2]) <= tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
`),

  /** KEYS: the subject's ZSET. ARGV: now, session key base → hashes of the sessions that were live. */
  revokeAllSessions: script(1, `
local now, base = tonumber(ARGV[1]), ARGV[2]
local listed = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local live = {}
for i = 1, #listed, 2 do
  redis.call('DEL', base .. listed[i])
  if tonumber(listed[i + 1]) > now then live[#live + 1] = listed[i] end
end
redis.call('DEL', KEYS[1])
return live
`),
} as const satisfies Record<string, ScriptSource>;

export type ScriptName = keyof typeof SCRIPTS;
