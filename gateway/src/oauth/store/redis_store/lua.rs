//! The Lua scripts of the Redis backend. Each runs atomically in Redis (no other command of any
//! replica runs in between), which is what makes a code single-use and a rotation atomic across
//! replicas without WATCH loops. Keys are built inside the scripts from the prefix in ARGV[1]:
//! the deployment runs one Redis (or a primary with replicas), not Redis Cluster.
//!
//! Layout under `<REDIS_PREFIX>:oauth1` (hashes are hex SHA-256 of tokens and codes):
//! - `client:<id>` (hash) and `clients` (zset id → last use): registered clients, LRU order.
//! - `code:<hash>` (hash): a code; `used_at`, `grant_id` (its grant, or the one being made),
//!   `revoked` (replayed while its grant was being made).
//! - `grant:<id>` (hash), `grant_at:<id>`/`grant_rt:<id>` (lists of its token hashes, newest
//!   first), `at:<hash>`/`rt:<hash>` (hash: grant, expiry, use).
//! - `subject:<login>` (zset of live grants, oldest first), `cgrants:<client>` (set of grants,
//!   live or revoked), `purge` (zset grant → when it may be purged, by the store's clock).
//!
//! Every key gets a TTL: the logic compares the stored instants with the caller's `now`; the
//! TTLs only make sure nothing outlives its use if no purge ever runs.

/// Helpers every script starts with. ARGV[1] is always the key prefix.
const PRELUDE: &str = r#"
local P = ARGV[1]
local function k(kind, id) return P .. ':' .. kind .. ':' .. id end
local function ttl_at_least(key, secs)
  local t = redis.call('TTL', key)
  if t == -1 or (t >= 0 and t < secs) then redis.call('EXPIRE', key, secs) end
end
local function span(at, now) return math.max(1, math.floor(at - now)) end
-- Revokes a live grant: its tokens die now, the grant itself is remembered for `kept` seconds.
local function revoke(gid, now, kept)
  local g = k('grant', gid)
  local f = redis.call('HMGET', g, 'subject', 'revoked_at')
  if not f[1] or f[2] then return false end
  redis.call('HSET', g, 'revoked_at', now)
  for _, h in ipairs(redis.call('LRANGE', k('grant_at', gid), 0, -1)) do redis.call('DEL', k('at', h)) end
  for _, h in ipairs(redis.call('LRANGE', k('grant_rt', gid), 0, -1)) do redis.call('DEL', k('rt', h)) end
  redis.call('DEL', k('grant_at', gid), k('grant_rt', gid))
  redis.call('ZREM', k('subject', f[1]), gid)
  redis.call('EXPIRE', g, kept)
  redis.call('ZADD', P .. ':purge', now + kept, gid)
  ttl_at_least(P .. ':purge', kept)
  return true
end
local function live(gid)
  local f = redis.call('HMGET', k('grant', gid), 'subject', 'revoked_at')
  return f[1] and not f[2]
end
-- Records new tokens of a grant; the grant and what hangs off it live until the refresh
-- token expires. Keeps `access_keep` access tokens.
local function add_tokens(gid, now, at, at_exp, rt, rt_exp, access_keep)
  local ttl = span(rt_exp, now)
  redis.call('HSET', k('at', at), 'grant_id', gid, 'expires_at', at_exp)
  redis.call('EXPIRE', k('at', at), span(at_exp, now))
  local al = k('grant_at', gid)
  redis.call('LPUSH', al, at)
  for _, old in ipairs(redis.call('LRANGE', al, access_keep, -1)) do redis.call('DEL', k('at', old)) end
  redis.call('LTRIM', al, 0, access_keep - 1)
  redis.call('HSET', k('rt', rt), 'grant_id', gid, 'expires_at', rt_exp)
  redis.call('LPUSH', k('grant_rt', gid), rt)
  for _, key in ipairs({k('grant', gid), al, k('grant_rt', gid), k('rt', rt)}) do
    redis.call('EXPIRE', key, ttl)
  end
  redis.call('HSET', k('grant', gid), 'expires_at', rt_exp)
  redis.call('ZADD', P .. ':purge', rt_exp, gid)
  ttl_at_least(P .. ':purge', ttl)
  return ttl
end
local function has_live_grant(client)
  local set = k('cgrants', client)
  for _, gid in ipairs(redis.call('SMEMBERS', set)) do
    if redis.call('EXISTS', k('grant', gid)) == 0 then redis.call('SREM', set, gid)
    elseif live(gid) then return true end
  end
  return false
end
"#;

/// The prelude followed by `body`.
pub(super) fn script(body: &str) -> redis::Script {
    redis::Script::new(&format!("{PRELUDE}\n{body}"))
}

/// ARGV: prefix, id, kind, name, redirect URIs (JSON), metadata, now, max, young secs, ttl.
/// Returns 'ok' or 'full'.
pub(super) const PUT_CLIENT: &str = r#"
local id, now, max, young, ttl = ARGV[2], tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local idx = P .. ':clients'
local c = k('client', id)
if redis.call('EXISTS', c) == 0 then
  for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
    if redis.call('EXISTS', k('client', m)) == 0 then redis.call('ZREM', idx, m) end
  end
  while redis.call('ZCARD', idx) >= max do
    local victim = nil
    for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
      local created = tonumber(redis.call('HGET', k('client', m), 'created_at'))
      if created and created <= now - young and not has_live_grant(m) then victim = m break end
    end
    if not victim then return 'full' end
    redis.call('DEL', k('client', victim))
    redis.call('ZREM', idx, victim)
  end
  redis.call('HSET', c, 'created_at', now)
end
redis.call('HSET', c, 'kind', ARGV[3], 'client_name', ARGV[4], 'redirect_uris', ARGV[5],
  'metadata', ARGV[6], 'last_used_at', now)
redis.call('EXPIRE', c, ttl)
redis.call('ZADD', idx, now, id)
ttl_at_least(idx, ttl)
return 'ok'
"#;

/// ARGV: prefix, id, now, ttl. A use keeps the client (and its place in the LRU order).
pub(super) const TOUCH_CLIENT: &str = r#"
local c = k('client', ARGV[2])
if redis.call('EXISTS', c) == 1 then
  local ttl = tonumber(ARGV[4])
  redis.call('HSET', c, 'last_used_at', ARGV[3])
  redis.call('EXPIRE', c, ttl)
  redis.call('ZADD', P .. ':clients', ARGV[3], ARGV[2])
  ttl_at_least(P .. ':clients', ttl)
end
return 'ok'
"#;

/// ARGV: prefix, id. 1 when a grant (live or remembered as revoked) names the client.
pub(super) const CLIENT_HAS_GRANT: &str = r#"
local set = k('cgrants', ARGV[2])
for _, gid in ipairs(redis.call('SMEMBERS', set)) do
  if redis.call('EXISTS', k('grant', gid)) == 1 then return 1 end
  redis.call('SREM', set, gid)
end
return 0
"#;

/// ARGV: prefix. Clients still there (the index forgets expired ones).
pub(super) const CLIENT_COUNT: &str = r#"
local idx = P .. ':clients'
for _, m in ipairs(redis.call('ZRANGE', idx, 0, -1)) do
  if redis.call('EXISTS', k('client', m)) == 0 then redis.call('ZREM', idx, m) end
end
return redis.call('ZCARD', idx)
"#;

/// ARGV: prefix, hash, client, redirect URI, challenge, resource, scope, subject, sealed Coda
/// token, expires_at, now, grace. A code is remembered `grace` seconds after it expires, so a
/// late replay is still recognised (and revokes its grant).
pub(super) const INSERT_CODE: &str = r#"
local c = k('code', ARGV[2])
redis.call('HSET', c, 'client_id', ARGV[3], 'redirect_uri', ARGV[4], 'code_challenge', ARGV[5],
  'resource', ARGV[6], 'scope', ARGV[7], 'subject', ARGV[8], 'coda_token', ARGV[9], 'expires_at', ARGV[10])
redis.call('EXPIRE', c, span(tonumber(ARGV[10]) + tonumber(ARGV[12]), tonumber(ARGV[11])))
return 'ok'
"#;

/// ARGV: prefix, hash, now, grant id ('' when only presenting), revoked-kept secs.
/// Spends a code. Returns {'unknown'}, {'expired'}, {'reused'[, grant, subject]} or {'valid',
/// client, redirect URI, challenge, resource, scope, subject, sealed Coda token}.
/// A valid code records the grant about to be made from it; a replay that comes before that
/// grant exists marks the code `revoked`, and [`GRANT`] then makes the grant revoked.
pub(super) const TAKE_CODE: &str = r#"
local c = k('code', ARGV[2])
local now, kept = tonumber(ARGV[3]), tonumber(ARGV[5])
local f = redis.call('HMGET', c, 'used_at', 'grant_id', 'subject', 'expires_at', 'client_id',
  'redirect_uri', 'code_challenge', 'resource', 'scope', 'coda_token')
if not f[4] then return {'unknown'} end
if f[1] then
  if f[2] then
    if redis.call('EXISTS', k('grant', f[2])) == 1 then revoke(f[2], now, kept)
    else redis.call('HSET', c, 'revoked', 1) end
    return {'reused', f[2], f[3]}
  end
  return {'reused'}
end
redis.call('HSET', c, 'used_at', now)
if tonumber(f[4]) <= now then return {'expired'} end
if ARGV[4] ~= '' then redis.call('HSET', c, 'grant_id', ARGV[4]) end
return {'valid', f[5], f[6], f[7], f[8], f[9], f[3], f[10]}
"#;

/// ARGV: prefix, code hash, grant id. The caller's check refused the code: no grant will be
/// made from it.
pub(super) const ABANDON_CODE: &str = r#"
local c = k('code', ARGV[2])
if redis.call('HGET', c, 'grant_id') == ARGV[3] then redis.call('HDEL', c, 'grant_id') end
return 'ok'
"#;

/// ARGV: prefix, code hash, grant id, now, max grants per subject, access hash, access expiry,
/// refresh hash, refresh expiry, revoked-kept secs, access tokens kept.
/// Creates the grant taken by [`TAKE_CODE`] with its first tokens; a user over the cap loses
/// their oldest grants. Returns {'granted', evicted...}, or {'lost'} when the code is gone.
pub(super) const GRANT: &str = r#"
local c = k('code', ARGV[2])
local gid, now, max, kept = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[10])
local f = redis.call('HMGET', c, 'grant_id', 'revoked', 'client_id', 'subject', 'coda_token',
  'resource', 'scope')
if f[1] ~= gid then return {'lost'} end
local out = {'granted'}
local sk = k('subject', f[4])
if not f[2] then
  local alive = {}
  for _, old in ipairs(redis.call('ZREVRANGE', sk, 0, -1)) do
    if live(old) then table.insert(alive, old) else redis.call('ZREM', sk, old) end
  end
  for i = math.max(max, 1), #alive do
    revoke(alive[i], now, kept)
    table.insert(out, alive[i])
  end
end
local g = k('grant', gid)
redis.call('HSET', g, 'client_id', f[3], 'subject', f[4], 'coda_token', f[5], 'resource', f[6],
  'scope', f[7], 'created_at', now)
local ttl = add_tokens(gid, now, ARGV[6], tonumber(ARGV[7]), ARGV[8], tonumber(ARGV[9]), tonumber(ARGV[11]))
-- Oldest first; grants made in the same second keep the order they were made in.
local top = redis.call('ZREVRANGE', sk, 0, 0, 'WITHSCORES')
local score = now * 1000
if top[2] and tonumber(top[2]) >= score then score = tonumber(top[2]) + 1 end
redis.call('ZADD', sk, score, gid)
ttl_at_least(sk, ttl)
redis.call('SADD', k('cgrants', f[3]), gid)
ttl_at_least(k('cgrants', f[3]), ttl)
if f[2] then revoke(gid, now, kept) end
return out
"#;

/// ARGV: prefix, refresh hash, client, has resource ('1'/'0'), resource, now, access hash,
/// access expiry, new refresh hash, refresh expiry, revoked-kept secs, access tokens kept,
/// used refresh tokens kept. Returns {outcome[, grant, client, subject, resource, scope]}.
pub(super) const ROTATE: &str = r#"
local now, kept = tonumber(ARGV[6]), tonumber(ARGV[11])
local r = k('rt', ARGV[2])
local t = redis.call('HMGET', r, 'grant_id', 'expires_at', 'used_at')
if not t[1] then return {'unknown'} end
local gid = t[1]
local g = redis.call('HMGET', k('grant', gid), 'client_id', 'subject', 'resource', 'scope', 'revoked_at')
if not g[1] or g[5] then return {'unknown'} end
if g[1] ~= ARGV[3] then return {'other_client'} end
local info = {gid, g[1], g[2], g[3], g[4]}
if t[3] then
  revoke(gid, now, kept)
  return {'replayed', unpack(info)}
end
if tonumber(t[2]) <= now then return {'expired'} end
if ARGV[4] == '1' and ARGV[5] ~= g[3] then return {'other_resource'} end
redis.call('HSET', r, 'used_at', now)
local ttl = add_tokens(gid, now, ARGV[7], tonumber(ARGV[8]), ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[12]))
-- Spent refresh tokens are remembered (to catch a replay) as long as the grant, a bounded few.
local rl = k('grant_rt', gid)
local used_keep = tonumber(ARGV[13])
for _, old in ipairs(redis.call('LRANGE', rl, used_keep + 1, -1)) do redis.call('DEL', k('rt', old)) end
redis.call('LTRIM', rl, 0, used_keep)
for _, h in ipairs(redis.call('LRANGE', rl, 0, -1)) do redis.call('EXPIRE', k('rt', h), ttl) end
ttl_at_least(k('subject', g[2]), ttl)
ttl_at_least(k('cgrants', g[1]), ttl)
return {'rotated', unpack(info)}
"#;

/// ARGV: prefix, access hash, now. {} or {grant, client, subject, resource, sealed Coda token}.
pub(super) const ACCESS: &str = r#"
local a = redis.call('HMGET', k('at', ARGV[2]), 'grant_id', 'expires_at')
if not a[1] or tonumber(a[2]) <= tonumber(ARGV[3]) then return {} end
local g = redis.call('HMGET', k('grant', a[1]), 'client_id', 'subject', 'resource', 'coda_token', 'revoked_at')
if not g[1] or g[5] then return {} end
return {a[1], g[1], g[2], g[3], g[4]}
"#;

/// ARGV: prefix, token hash, client ('' for any), now, revoked-kept secs.
/// {} or {grant, client, subject, resource, scope} of the grant just revoked.
pub(super) const REVOKE_TOKEN: &str = r#"
local gid = redis.call('HGET', k('at', ARGV[2]), 'grant_id') or redis.call('HGET', k('rt', ARGV[2]), 'grant_id')
if not gid then return {} end
local g = redis.call('HMGET', k('grant', gid), 'client_id', 'subject', 'resource', 'scope', 'revoked_at')
if not g[1] or g[5] then return {} end
if ARGV[3] ~= '' and ARGV[3] ~= g[1] then return {} end
revoke(gid, tonumber(ARGV[4]), tonumber(ARGV[5]))
return {gid, g[1], g[2], g[3], g[4]}
"#;

/// ARGV: prefix, grant, now, revoked-kept secs. {subject} when it was live, else {}.
pub(super) const REVOKE_GRANT: &str = r#"
local f = redis.call('HMGET', k('grant', ARGV[2]), 'subject', 'revoked_at')
if not f[1] or f[2] then return {} end
revoke(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
return {f[1]}
"#;

/// ARGV: prefix, subject. Live grants of the user.
pub(super) const LIVE_GRANTS: &str = r#"
local sk = k('subject', ARGV[2])
local n = 0
for _, gid in ipairs(redis.call('ZRANGE', sk, 0, -1)) do
  if live(gid) then n = n + 1 else redis.call('ZREM', sk, gid) end
end
return n
"#;

/// ARGV: prefix, now, batch. Drops grants whose refresh tokens all expired and revoked grants
/// past their memory, with everything that hangs off them; returns how many.
pub(super) const PURGE: &str = r#"
local due = redis.call('ZRANGEBYSCORE', P .. ':purge', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, gid in ipairs(due) do
  local g = k('grant', gid)
  local f = redis.call('HMGET', g, 'subject', 'client_id')
  for _, h in ipairs(redis.call('LRANGE', k('grant_at', gid), 0, -1)) do redis.call('DEL', k('at', h)) end
  for _, h in ipairs(redis.call('LRANGE', k('grant_rt', gid), 0, -1)) do redis.call('DEL', k('rt', h)) end
  redis.call('DEL', g, k('grant_at', gid), k('grant_rt', gid))
  if f[1] then redis.call('ZREM', k('subject', f[1]), gid) end
  if f[2] then redis.call('SREM', k('cgrants', f[2]), gid) end
  redis.call('ZREM', P .. ':purge', gid)
end
return #due
"#;
