-- The Lua API sluice gives scripts, described once: `sluice doc lua` (the
-- markdown reference), `--format luals` (lua-language-server definitions)
-- and `--format json` (the console's completion) are generated from it by
-- lua/apidoc.lua, and `sluice doc lua --check` compares it with what the
-- sandbox (lua/runtime.lua) really exposes, so neither can drift.
--
-- An entry: name, kind ("function", "value", "module" with `fields`),
-- params ({name, type, doc}; a type ending in `?` is optional), returns
-- ({type, doc}), type (a value's), doc (one paragraph of markdown).
-- Types are LuaLS's (`string`, `integer`, `table<string, string>`,
-- `sluice.regex`...); classes below name the tables functions return.

local lua_libs = {
  {name = "string", kind = "lua", doc = "Lua's `string`, with LuaJIT's pattern matching bounded by `lua.max_time` and no `string.dump`."},
  {name = "table", kind = "lua", doc = "Lua's `table` (`table.sort` on more than 256 elements without a comparator compares in Lua, a step per comparison)."},
  {name = "math", kind = "lua", doc = "Lua's `math`."},
  {name = "bit", kind = "lua", doc = "LuaJIT's `bit` operations."},
  {name = "coroutine", kind = "lua", doc = "Lua's `coroutine`; a script's own coroutines may wait (`http.request`) inside them."},
}

local base_fns = {"assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber", "tostring", "type",
  "unpack", "xpcall", "rawequal", "rawget", "rawset", "setmetatable", "getmetatable", "load",
  "loadstring", "require", "print", "_VERSION"}

local api = {
  title = "Lua API",
  intro = "Every script (`lua` processors inline or in a module file, checks, `${! }` interpolations, `generate` "
    .. "mappings, the console's playground, `sluice lua`) runs in a sandbox with the globals below, besides "
    .. "Lua's own base functions (" .. "`" .. table.concat(base_fns, "`, `") .. "`; `load` takes text only, "
    .. "`require` reads only modules under `lua.lua_path`, `print` writes to stderr). Library tables are a copy "
    .. "per script: a script that changes one changes only its own. Their functions raise errors (catch them "
    .. "with `pcall`; uncaught, they fail the message) and each is one C call whose work is linear in its input, "
    .. "bounded by `lua.max_memory`, except where said.",
  base = base_fns,
  internal = {"__bloblang"},   -- what translated Bloblang calls; not for scripts
  classes = {},
  globals = {},
}

local function class(name, doc, fields) api.classes[#api.classes + 1] = {name = name, doc = doc, fields = fields} end
local function global(e) api.globals[#api.globals + 1] = e end
local function fn(name, params, returns, doc) return {name = name, kind = "function", params = params, returns = returns, doc = doc} end
local function value(name, ty, doc) return {name = name, kind = "value", type = ty, doc = doc} end

-- ---------- the message ----------
global(value("this", "any", "The message's content as JSON. For an object, reading a top-level field (`this.n`) "
  .. "finds it in the bytes and decodes that value only, and keys the script adds are appended to the original bytes: "
  .. "the whole object is decoded only when a script needs it (a nested table, `pairs`, setting a key the text has). "
  .. "Assign fields to change it (`this.total = 3`), or `this = {...}` to replace it."))
global(value("meta", "sluice.meta", "The message's metadata: `meta.key` reads (a string or nil), `meta.key = v` sets, "
  .. "`meta.key = nil` removes, `meta()` returns a copy as a table."))
global(value("ctx", "sluice.ctx", "The request context of the message (read-only): empty outside a request."))
global(value("i", "integer?", "In a `generate` mapping, the count of the message being made (from 0); nil elsewhere."))
global(fn("content", {}, {{"string", "the content's bytes"}}, "The message's content as raw bytes."))
global(fn("deleted", {}, {{"sluice.deleted", "the marker"}}, "Return it (or assign it to `this`) to drop the message."))
global(fn("batch_index", {}, {{"integer", "0-based"}}, "The message's position in its batch."))
global(fn("errored", {}, {{"boolean"}}, "Whether an earlier processor flagged the message as failed."))
global(fn("error_message", {}, {{"string?", "nil when the message has not failed"}}, "The failure an earlier processor flagged the message with."))
global(fn("new_message", {{"content", "string|table?", "bytes, or a table encoded as JSON"}}, {{"sluice.message"}},
  "A new message, in a module's `process` or `process_batch` only; it joins the output when returned."))
-- ---------- helpers ----------
global(fn("uuid_v4", {}, {{"string", "36 characters"}}, "A random (version 4) UUID."))
global(fn("now", {}, {{"string", "RFC 3339 with nanoseconds, in UTC"}}, "The current time as text."))
global(fn("env", {{"name", "string"}}, {{"string?", "nil when unset"}},
  "An environment variable (`${NAME}` is refused in Lua code: its text would become code)."))
global(fn("log", {{"level", "\"trace\"|\"debug\"|\"info\"|\"warn\"|\"error\""}, {"message", "string"},
  {"fields", "table<string, any>?", "values are stringified (tables as JSON)"}}, {},
  "A line in the logger's format naming the running stream and processor (docs/observability.md)."))

global({name = "json", kind = "module", doc = "JSON through lua-cjson, with `[]` kept an array: a text that holds an "
  .. "empty array is decoded with its arrays marked, so `[]` stays `[]` through `json`, `this` and `msg:json()`; an "
  .. "empty table a script makes still encodes as `{}` unless marked. `json.encode` writes what lua-cjson writes "
  .. "(its escapes, `/` as `\\/`, 14 significant digits, its errors for sparse arrays, NaN and nesting past 1000 "
  .. "levels). Text that jansson refuses but lua-cjson reads (bytes that are not UTF-8, integers beyond 64 bits) "
  .. "decodes without marks.",
  fields = {
    fn("encode", {{"v", "any"}}, {{"string"}}, "Encodes a value as JSON."),
    fn("decode", {{"s", "string"}}, {{"any"}}, "Decodes JSON text (`null` becomes `json.null`)."),
    value("null", "lightuserdata", "JSON's null, decoded and encoded."),
    fn("array", {{"t", "table?"}}, {{"table", "t"}}, "Marks t (or a new table) to encode as an array even when empty."),
    fn("object", {{"t", "table?"}}, {{"table", "t"}}, "Marks t (or a new table) to encode as an object even when empty."),
    fn("is_array", {{"t", "any"}}, {{"boolean"}}, "Whether t is marked as an array."),
  }})
global({name = "msgpack", kind = "module", doc = "MessagePack through lua-mpack (libmpack): `this` and `json.null` "
  .. "encode as expected, `json.encode` writes `msgpack.null` as null, a table encodes as an array exactly where "
  .. "`json.encode` writes one (`json.array`/`json.object` marks, `[]` from `json.decode`; an unmarked empty table is "
  .. "a map), decoding marks arrays when the bytes may hold an empty one (so `[]` stays an array), negative integers "
  .. "take the smallest form that holds them (lua-mpack's own packer turns -129 into 127), "
  .. "and input nested too deep is refused.",
  fields = {
    fn("encode", {{"v", "any"}}, {{"string"}}, "Encodes a value as MessagePack."),
    fn("decode", {{"s", "string"}}, {{"any"}}, "Decodes MessagePack bytes."),
    value("null", "userdata", "MessagePack's nil."),
  }})

local re_flags = {"flags", "string?", "`i` caseless, `m` multi-line, `s` dot-all, `x` extended, `u` UTF-8, `U` ungreedy, "
  .. "`a` anchored, `D` dollar at the very end, `J` duplicate names"}
global({name = "re", kind = "module", doc = "PCRE2 regular expressions (Perl's syntax), compiled once, JIT-compiled "
  .. "where PCRE2 can, and cached (256 patterns per worker). Captures are a table: `[0]` the whole match, "
  .. "`[1]`..`[n]` the groups (`false` for one that took no part), `[name]` the named groups. Empty matches follow "
  .. "Go's regexp (and Benthos's `re_*`): one right after a match is skipped, so `re.gsub(\"baaac\", \"a*\", \"-\")` "
  .. "is `-b-c-`. OpenResty's flags `j` and `o` change nothing. Bounds: each match runs under PCRE2's match limit "
  .. "(10,000,000), a depth limit (100,000) and a heap limit (64 MiB, inside `lua.max_memory`), so a pattern that "
  .. "backtracks catastrophically fails its message with \"re: the pattern backtracks too much\"; loops over many "
  .. "matches stop at `lua.max_time`; a pattern longer than 64 KiB is refused.",
  fields = {
    fn("match", {{"s", "string"}, {"pattern", "string"}, re_flags, {"init", "integer?", "1-based start"}},
      {{"table<integer|string, string|false>?", "the captures, or nil"}}, "The first match's captures."),
    fn("find", {{"s", "string"}, {"pattern", "string"}, re_flags, {"init", "integer?"}},
      {{"integer?", "1-based start"}, {"integer?", "end"}}, "Where the first match is."),
    fn("gmatch", {{"s", "string"}, {"pattern", "string"}, re_flags},
      {{"fun(): table<integer|string, string|false>?", "an iterator over the matches' captures"}}, "Iterates over the matches."),
    fn("gsub", {{"s", "string"}, {"pattern", "string"},
      {"replacement", "string|fun(captures: table): string?", "a template (`$0`..`$9`, `${n}`, `${name}`, `$$`; inline "
        .. "code in a config writes `$${name}`) or a function of the captures (nil or false keeps the match)"},
      re_flags, {"max", "integer?"}}, {{"string", "the new string"}, {"integer", "the count"}},
      "Replaces the matches."),
    fn("split", {{"s", "string"}, {"pattern", "string"}, re_flags, {"max", "integer?", "at most max parts, the last unsplit"}},
      {{"string[]"}}, "The parts between the matches."),
    fn("compile", {{"pattern", "string"}, re_flags}, {{"sluice.regex"}}, "A regex with these functions as methods."),
    fn("escape", {{"s", "string"}}, {{"string"}}, "Quotes s for use in a pattern."),
  }})
class("sluice.regex", "A compiled pattern (`re.compile`).", {
  fn("match", {{"s", "string"}, {"init", "integer?"}}, {{"table<integer|string, string|false>?"}}, "As `re.match`."),
  fn("find", {{"s", "string"}, {"init", "integer?"}}, {{"integer?"}, {"integer?"}}, "As `re.find`."),
  fn("gmatch", {{"s", "string"}}, {{"fun(): table<integer|string, string|false>?"}}, "As `re.gmatch`."),
  fn("gsub", {{"s", "string"}, {"replacement", "string|fun(captures: table): string?"}, {"max", "integer?"}},
    {{"string"}, {"integer"}}, "As `re.gsub`."),
  fn("split", {{"s", "string"}, {"max", "integer?"}}, {{"string[]"}}, "As `re.split`."),
})

local zone = {"zone", "string?", "an IANA name (`Europe/Paris`, from the system's tzdata), `UTC` (the default) or `+05:30`"}
global({name = "time", kind = "module", doc = "Times are seconds since the epoch (numbers with a fraction; a double "
  .. "holds about a microsecond today). Zones are read once per worker and zone; past a zone file's last transition "
  .. "its POSIX TZ rule applies (RFC 8536's footer). A time that a clock change skips or repeats resolves as Go's "
  .. "`time.Date` does.",
  fields = {
    fn("now", {}, {{"number"}}, "Seconds since the epoch."),
    fn("now_ms", {}, {{"integer"}}, "Milliseconds since the epoch."),
    fn("now_us", {}, {{"integer"}}, "Microseconds since the epoch."),
    fn("now_ns", {}, {{"ffi.cdata*", "a 64-bit integer; `tonumber()` it to compute with doubles"}}, "Nanoseconds since the epoch, exact."),
    fn("parse", {{"text", "string"}, {"format", "string?", "glibc `strptime` conversions and `%f` (1 to 9 digits of a "
      .. "fraction); without it RFC 3339 by its grammar (leap second only at the end of a UTC day)"}, zone},
      {{"integer", "seconds"}, {"integer", "nanoseconds of the second"}}, "Reads a time; the whole text must match."),
    fn("format", {{"t", "number"}, {"format", "string?", "`strftime` with `%f` (µs), `%L` (ms), `%N` (ns), `%:z`; "
      .. "without it RFC 3339 as Go's `RFC3339Nano`"}, zone, {"ns", "integer?", "replaces t's fraction exactly"}},
      {{"string"}}, "Writes a time."),
    fn("offset", {{"t", "number"}, {"zone", "string"}}, {{"integer", "seconds east of UT"}, {"string?", "the abbreviation"}},
      "The zone's offset at t."),
    fn("parse_duration", {{"s", "string", "Go's form: `1h30m`, `1.5s`, `-250ms` (units ns, us, µs, ms, s, m, h)"}},
      {{"number", "seconds"}}, "Reads a duration."),
    fn("format_duration", {{"seconds", "number"}}, {{"string", "e.g. `1h30m0s`"}}, "Writes a duration as Go does."),
  }})

local out = {"out", "\"hex\"|\"raw\"|\"base64\"|\"number\"?", "the output: lower-case hex (the default), raw bytes, base64, "
  .. "or for the 32-bit ones a number"}
global({name = "hash", kind = "module", doc = "Digests from OpenSSL, xxHash (libxxhash; canonical big-endian bytes) and "
  .. "zlib's CRC-32. A webhook signature: `hash.hmac(\"sha256\", secret, content(), \"base64\")`.",
  fields = {
    fn("md5", {{"s", "string"}, out}, {{"string"}}, "MD5 of s."),
    fn("sha1", {{"s", "string"}, out}, {{"string"}}, "SHA-1 of s."),
    fn("sha256", {{"s", "string"}, out}, {{"string"}}, "SHA-256 of s."),
    fn("sha512", {{"s", "string"}, out}, {{"string"}}, "SHA-512 of s."),
    fn("hmac", {{"algorithm", "\"md5\"|\"sha1\"|\"sha256\"|\"sha512\""}, {"key", "string"}, {"s", "string"}, out},
      {{"string"}}, "HMAC of s with key."),
    fn("xxhash64", {{"s", "string"}, out, {"seed", "integer?"}}, {{"string"}}, "XXH64 of s."),
    fn("xxhash32", {{"s", "string"}, out, {"seed", "integer?"}}, {{"string|integer"}}, "XXH32 of s."),
    fn("crc32", {{"s", "string"}, out}, {{"string|integer"}}, "CRC-32 (IEEE) of s."),
  }})
local variant = {"variant", "\"std\"|\"rawstd\"|\"url\"|\"rawurl\"?", "RFC 4648's variants as Go names them (`std` the default)"}
global({name = "base64", kind = "module", doc = "Base64; decoding is strict (only the variant's alphabet and padding, no "
  .. "line breaks, no stray bits).",
  fields = {
    fn("encode", {{"s", "string"}, variant}, {{"string"}}, "Encodes bytes."),
    fn("decode", {{"s", "string"}, variant}, {{"string"}}, "Decodes text."),
  }})
global({name = "hex", kind = "module", doc = "Hexadecimal.",
  fields = {
    fn("encode", {{"s", "string"}}, {{"string", "lower case"}}, "Encodes bytes."),
    fn("decode", {{"s", "string", "either case"}}, {{"string"}}, "Decodes text."),
  }})
global({name = "url", kind = "module", doc = "Percent-encoding (libcurl's).",
  fields = {
    fn("encode", {{"s", "string"}}, {{"string"}}, "Encodes everything but RFC 3986's unreserved characters (a path segment or a query value)."),
    fn("decode", {{"s", "string"}}, {{"string"}}, "Decodes percent-encoding."),
    fn("query_encode", {{"s", "string"}}, {{"string"}}, "The form encoding of query strings (a space as `+`)."),
    fn("query_decode", {{"s", "string"}}, {{"string"}}, "Decodes the form encoding (`+` as a space)."),
  }})

local cname = {"name", "string", "a label of `cache_resources:`"}
local ttl = {"ttl", "number|string?", "seconds (`30`, `0.5`) or a duration (`\"30s\"`), `0` for none; without it the resource's `default_ttl`"}
global({name = "cache", kind = "module", doc = "The resources of `cache_resources:` by label, shared with every other "
  .. "script and processor of the process and kept across reloads (docs/caches.md). Keys and values are strings (a "
  .. "number is turned into one). What the cache refuses comes back as `nil, err` (a value over `max_bytes`, `incr` "
  .. "of a value that is not an integer); a call the script gets wrong (a label no resource has, a key that is a "
  .. "table) raises, failing that message only; a literal label no resource has is a lint error at the call.",
  fields = {
    fn("get", {cname, {"key", "string"}}, {{"string?", "nil when absent or expired"}, {"string?", "err"}}, "Reads a key."),
    fn("set", {cname, {"key", "string"}, {"value", "string"}, ttl}, {{"true?"}, {"string?", "err"}}, "Stores a key."),
    fn("add", {cname, {"key", "string"}, {"value", "string"}, ttl}, {{"boolean?", "false when the key was there"}, {"string?", "err"}},
      "Stores a key only if it is absent."),
    fn("delete", {cname, {"key", "string"}}, {{"boolean?", "whether the key was there"}, {"string?", "err"}}, "Removes a key."),
    fn("incr", {cname, {"key", "string"}, {"by", "integer?", "1 by default, may be negative"}, ttl},
      {{"integer?", "the new value"}, {"string?", "err"}},
      "Adds to an integer (an absent key counts from 0 and takes ttl; a present one keeps its expiry)."),
  }})

global({name = "http", kind = "module", doc = "Calls out without holding the worker: the message's coroutine waits while "
  .. "the request is performed on the worker's loop and the run goes on with the batch's other messages (see the `lua` "
  .. "processor's Calls that wait). One rule picks the client: an `http://` or `https://` URL without `user:password@` goes "
  .. "through sluice's own HTTP/1.1 client (connections kept alive per scheme, host and port, a call whose kept-alive connection "
  .. "ends before any byte of the answer came is sent again once on a new one, whatever its method, as libcurl does: a "
  .. "server that closed it while idle never saw the request, but one that read it and closed without answering gets it "
  .. "twice; a new connection's is not sent again; https checks the server against OpenSSL's "
  .. "default verify paths, which `SSL_CERT_FILE` and `SSL_CERT_DIR` may point elsewhere, and its name, sends SNI "
  .. "(not for an address), resumes the host's last TLS session, and takes an end without close_notify as a cut answer) unless a proxy "
  .. "variable (`http_proxy`, `https_proxy`, `all_proxy`) is set; everything else (proxies, credentials in the URL) "
  .. "goes through libcurl, which checks TLS peers against the system's CAs. Both answer alike and follow redirects alike (303, and 301/302 of "
  .. "a POST, become a GET without the body). A 4xx or 5xx answer is a result, not an error; no answer (refused, "
  .. "timeout, a body over `max_size`, headers over 64 KiB, a redirect loop) is `nil, err`. Where a run cannot wait "
  .. "(checks, interpolations, `generate`, lint) it raises \"http.request cannot be called here\".",
  fields = {
    fn("request", {{"req", "sluice.http.request"}}, {{"sluice.http.response?"}, {"string?", "err"}}, "Performs a request."),
    fn("get", {{"url", "string"}, {"opts", "sluice.http.request?"}}, {{"sluice.http.response?"}, {"string?", "err"}}, "A GET request."),
    fn("post", {{"url", "string"}, {"body", "string"}, {"opts", "sluice.http.request?"}}, {{"sluice.http.response?"}, {"string?", "err"}},
      "A POST request."),
  }})
class("sluice.http.request", "What `http.request` takes.", {
  value("method", "string?", "GET by default (POST with a body)."),
  value("url", "string", "http or https."),
  value("headers", "table<string, string>?", "Names and values with control characters are refused."),
  value("body", "string?", "The request's body."),
  value("timeout", "number|string?", "Milliseconds or a duration (`\"2s\"`); 5 s by default."),
  value("max_size", "integer?", "Cap on the answer's body (10 MiB by default)."),
  value("redirects", "integer?", "Redirects followed (5 by default, 0 none)."),
})
class("sluice.http.response", "What `http.request` answers.", {
  value("status", "integer", "The status code."),
  value("headers", "table<string, string>", "Lower-cased names; a repeated header joined with `, `. Made from the "
    .. "answer's header lines when the script first uses it (reads, writes, `pairs`, `json.encode`, passes it on), "
    .. "so an unread one costs nothing; its metatable is protected (`getmetatable` answers false)."),
  value("body", "string", "The body."),
})

global({name = "redis", kind = "module", doc = "Commands to the Redis of a `redis` cache resource (`cache_resources:`, "
  .. "docs/caches.md), on that resource's connection (one per worker, pipelined, shared with its `cache.*` operations; "
  .. "its `prefix` does not apply here); the call waits like `http.request` (the same `max_concurrency`, `timeout` and "
  .. "places where it cannot be called). Errors are values: Redis's refusal is `nil, \"ERR ...\"`, a connection down "
  .. "or lost `nil, \"redis host:port: ...\"`. A call the script gets wrong raises: a label no `redis` resource has (a "
  .. "literal one is a lint error at the call), an argument that is not a string or a number, and commands that would "
  .. "hold or change the shared connection (blocking reads such as `BLPOP` or `XREAD ... BLOCK`, `SUBSCRIBE`, `MONITOR`, "
  .. "`MULTI`/`EXEC`/`WATCH`, `SELECT`, `AUTH`, `CLIENT`, `WAIT`): steps that must not interleave with other messages' "
  .. "commands go in one `EVAL`. Debian's hiredis (0.14) reads replies nested at most 7 deep: a deeper one (only `EVAL` "
  .. "makes one) drops the connection, failing the calls waiting on it, and it reconnects.",
  fields = {
    fn("call", {{"label", "string", "a `redis` cache resource"}, {"command", "string"}, {"...", "string|number",
      "arguments: strings (binary-safe) or numbers (integers written in full)"}},
      {{"any", "a status or bulk string is a string, an integer a number (exact up to 2^53), a nil reply nil, an array "
        .. "a table marked as a JSON array (a nil element json.null, an error element {err = \"...\"})"}, {"string?", "err"}},
      "Sends one command and waits for its reply."),
  }})

class("sluice.meta", "The message's metadata (`meta`, `msg.meta`).", {
  fn("__call", {}, {{"table<string, string>", "a copy"}}, "`meta()`: all of it as a table."),
})
class("sluice.ctx", "The request a message came with (read-only).", {
  value("method", "string?", "The request's method."),
  value("path", "string?", "Its path."),
  value("remote_addr", "string?", "The client's address."),
  value("request_id", "string?", "The request's id."),
  value("user", "string?", "The authenticated user."),
  value("query", "table<string, string>", "Query parameters."),
  value("headers", "table<string, string>", "Headers, lower-cased names."),
  value("params", "table<string, string>", "Path parameters of the route."),
  value("cookies", "table<string, string>", "Cookies."),
  value("jwt", "table<string, any>", "The verified token's claims."),
})
class("sluice.message", "A message in a module's `process(msg, ctx)` or `process_batch(batch, ctx)`; refuses every use after the call that received it.", {
  fn("content", {}, {{"string"}}, "The content's bytes."),
  fn("bytes", {}, {{"string"}}, "Alias of `content`."),
  fn("set_content", {{"s", "string"}}, {}, "Replaces the content."),
  fn("json", {}, {{"any"}}, "The content decoded as JSON."),
  fn("set_json", {{"v", "any"}}, {}, "Replaces the content with v encoded as JSON."),
  value("meta", "sluice.meta", "That message's metadata: `msg.meta.k`, `msg.meta.k = v`."),
  fn("metadata", {}, {{"table<string, string>"}}, "A copy of the metadata."),
  fn("error", {}, {{"string?"}}, "The failure the message is flagged with."),
  fn("set_error", {{"e", "string?"}}, {}, "Flags the message as failed (nil clears it)."),
  fn("copy", {}, {{"sluice.message"}}, "A copy, which joins the output when returned."),
})
class("sluice.deleted", "The marker `deleted()` returns.", {})

global({name = "os", kind = "module", doc = "Lua's `os`, restricted to its clocks.",
  fields = {
    fn("time", {{"t", "table?"}}, {{"integer"}}, "Lua's `os.time`."),
    fn("clock", {}, {{"number"}}, "CPU seconds of the process."),
    fn("date", {{"format", "string?"}, {"t", "number?"}}, {{"string|table"}}, "Lua's `os.date`."),
    fn("difftime", {{"t2", "number"}, {"t1", "number"}}, {{"number"}}, "Lua's `os.difftime`."),
  }})
for _, l in ipairs(lua_libs) do global(l) end

return api
