"""The server-side scripts of the shared rate limiter and circuit breaker.

Each runs atomically in Redis (``EVALSHA``), so workers never read-modify-write the same
state at once. They transcribe the pure decisions of the sans-IO core — ``TokenBucket``
(``_core/_bucket.py``) and ``CircuitBreaker`` (``_core/_breaker.py``) — rule for rule;
tests run both side by side on the same inputs to keep them equal. Times are seconds as
floats, read from the server's clock (``TIME``) so every worker shares one clock; a test
may pass its own ``now`` instead (the first argument; empty: the server's). Numbers come
back as strings (Redis would truncate a Lua float to an integer).
"""

from __future__ import annotations

__all__ = ["BUCKET", "CIRCUIT"]

#: KEYS[1]: the bucket (a hash: ``r``, ``t`` levels at time ``at``, ``blocked`` until).
#: ARGV: now, requests per minute ('' none), burst, tokens per minute ('' none), then
#: operations of 5 arguments each, applied in order:
#:   take,     cost, take? ('1': take when ready; '0': only say the delay), '', ''
#:   refund,   cost, '', '', ''
#:   penalize, seconds ('' none), '', '', ''
#:   observe,  requests remaining, requests reset, tokens remaining, tokens reset
#: (the caller has already dropped unusable values and delays over its max: '' each).
#: Returns {taken, delay, requests level, tokens level, blocked for} of the last take
#: (taken 0, delay 0 without one); levels are '' for a bucket not configured.
BUCKET = """
local key = KEYS[1]
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local rpm = tonumber(ARGV[2])
local rcap = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local saved = redis.call('HMGET', key, 'r', 't', 'at', 'blocked')
local r, t = tonumber(saved[1]), tonumber(saved[2])
local at = tonumber(saved[3]) or now
local blocked = tonumber(saved[4]) or 0
if now < at then now = at end -- a clock that went back stands still
local rint, tint
if rpm then
  rint = 60 / rpm
  if r == nil then r = rcap else r = math.min(rcap, r + (now - at) / rint) end
end
if tpm then
  tint = 60 / tpm
  if t == nil then t = tpm else t = math.min(tpm, t + (now - at) / tint) end
end

local function block(seconds)
  if seconds ~= nil then blocked = math.max(blocked, now + seconds) end
end

local function clamp(level, cap)
  return math.min(cap, math.max(0, level))
end

local taken, delay = 0, 0
local i = 5
while i + 4 <= #ARGV do
  local op = ARGV[i]
  local a, b, c, d = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  if op == 'take' then
    local cost = tonumber(a)
    local ready = blocked
    if rpm and r < 1 then ready = math.max(ready, now + (1 - r) * rint) end
    if tpm and t < cost then ready = math.max(ready, now + (cost - t) * tint) end
    taken, delay = 0, math.max(0, ready - now)
    if delay == 0 and b == '1' then
      if rpm then r = clamp(r - 1, rcap) end
      if tpm then t = clamp(t - cost, tpm) end
      taken = 1
    end
  elseif op == 'refund' then
    local cost = tonumber(a)
    if rpm then r = clamp(r + 1, rcap) end
    if tpm then t = clamp(t + cost, tpm) end
  elseif op == 'penalize' then
    if rpm then r = 0 end
    block(tonumber(a))
  elseif op == 'observe' then
    local remaining, reset = tonumber(a), tonumber(b)
    if remaining ~= nil then
      if remaining <= 0 then block(reset) end
      if rpm and remaining < r then r = clamp(remaining, rcap) end
    end
    remaining, reset = tonumber(c), tonumber(d)
    if remaining ~= nil then
      if remaining <= 0 then block(reset) end
      if tpm and remaining < t then t = clamp(remaining, tpm) end
    end
  end
  i = i + 5
end

-- Kept until it would be full and unblocked again, which is what a missing key reads as.
local idle = math.max(0, blocked - now)
if rpm then idle = math.max(idle, (rcap - r) * rint) end
if tpm then idle = math.max(idle, (tpm - t) * tint) end
local fields = {'at', string.format('%.17g', now), 'blocked', string.format('%.17g', blocked)}
if rpm then table.insert(fields, 'r'); table.insert(fields, string.format('%.17g', r)) end
if tpm then table.insert(fields, 't'); table.insert(fields, string.format('%.17g', t)) end
redis.call('HSET', key, unpack(fields))
redis.call('PEXPIRE', key, math.ceil(idle * 1000) + 1000)

local rs, ts = '', ''
if rpm then rs = string.format('%.17g', r) end
if tpm then ts = string.format('%.17g', t) end
return {taken, string.format('%.17g', delay), rs, ts,
        string.format('%.17g', math.max(0, blocked - now))}
"""

#: KEYS[1]: the circuit (a hash: ``open``, ``opened_at``, ``failures``, ``times_opened``,
#: ``rejected``); KEYS[2..]: one key per half-open probe slot, held with SET NX PX.
#: ARGV: now, operation (admit, success, failure, neutral, peek), failure threshold,
#: cooldown seconds, probe lease milliseconds, the admission's token, its probe slot
#: (0: not a probe; -1: whichever slot the token holds), the circuit's time to live in
#: milliseconds.
#: Returns {allowed, probe slot, retry in (the rest of the cooldown while open, for
#: anything but an admitted request), state, failures, times opened, rejected, probes in
#: flight}.
CIRCUIT = """
local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local op = ARGV[2]
local threshold, cooldown = tonumber(ARGV[3]), tonumber(ARGV[4])
local lease, token, slot = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local saved = redis.call('HMGET', KEYS[1], 'open', 'opened_at', 'failures', 'times_opened',
                         'rejected')
local open = saved[1] == '1'
local opened_at = tonumber(saved[2]) or 0
local failures = tonumber(saved[3]) or 0
local times = tonumber(saved[4]) or 0
local rejected = tonumber(saved[5]) or 0
local changed = false

local function state()
  if not open then return 'closed' end
  if now >= opened_at + cooldown then return 'half_open' end
  return 'open'
end

local function release()
  for i = 2, #KEYS do
    if (slot < 0 or i == slot + 1) and redis.call('GET', KEYS[i]) == token then
      redis.call('DEL', KEYS[i])
    end
  end
end

local function trip()
  open, opened_at, times, changed = true, now, times + 1, true
end

local allowed, probe, retry_in = 0, 0, 0
if op == 'admit' then
  local s = state()
  if s == 'closed' then
    allowed = 1
  else
    if s == 'half_open' then
      for i = 2, #KEYS do
        if redis.call('SET', KEYS[i], token, 'NX', 'PX', lease) then
          allowed, probe = 1, i - 1
          break
        end
      end
    end
    if allowed == 0 then rejected, changed = rejected + 1, true end
  end
elseif op == 'success' then
  if slot > 0 then
    release()
    if state() == 'half_open' then open, failures, changed = false, 0, true end
  elseif not open and failures ~= 0 then
    failures, changed = 0, true
  end
elseif op == 'failure' then
  if slot > 0 then
    release()
    if state() == 'half_open' then
      failures = failures + 1
      trip()
    end
  elseif not open then
    failures, changed = failures + 1, true
    if failures >= threshold then trip() end
  end
elseif op == 'neutral' then
  release()
end

if changed then
  local flag = '0'
  if open then flag = '1' end
  redis.call('HSET', KEYS[1], 'open', flag, 'opened_at', string.format('%.17g', opened_at),
             'failures', failures, 'times_opened', times, 'rejected', rejected)
  redis.call('PEXPIRE', KEYS[1], ARGV[8])
end
if allowed == 0 and state() == 'open' then retry_in = opened_at + cooldown - now end
local probes = 0
for i = 2, #KEYS do probes = probes + redis.call('EXISTS', KEYS[i]) end
return {allowed, probe, string.format('%.17g', retry_in), state(), failures, times, rejected,
        probes}
"""
