/* The standard library scripts see beside Lua's own: `re`, `time`, `hash`,
 * `base64`, `hex`, `url`, `json`'s marks and `msgpack` (lua/library.c and
 * the files it names; lua/runtime.lua puts them in every environment). */
#ifndef SL_LUA_LIBRARY_H
#define SL_LUA_LIBRARY_H
#include "guard.h"

/* Pushes a table of the C parts: {re, time, hash, base64, hex, url,
 * json_make}; g bounds the loops of `re` (it belongs to the VM, as they do). */
void sl_lstdlib_push(lua_State *L, sl_lguard_t *g);

/* The library's reference, in `sluice doc lua` (processors/lua.c puts it in
 * the `lua` processor's description): the one place it is described. */
#define SL_LLIBRARY_DOC \
  "### Standard library\n\n" \
  "Beside Lua's `string`, `table`, `math`, `bit`, `os` (`time`, `clock`, `date`, `difftime`) and `coroutine`, " \
  "every script (processors, modules, checks, `${! }` interpolations, `generate` mappings) has the tables " \
  "below, each a copy of its own (a script that changes one changes only its own). Their functions raise " \
  "errors (catch them with `pcall`; uncaught, they fail the message) and each is one C call whose work is " \
  "linear in its input, bounded by `lua.max_memory`, except where said.\n\n" \
  "- **`re`**: PCRE2 regular expressions (Perl's syntax), compiled once, JIT-compiled where PCRE2 can, and " \
  "cached (256 patterns per worker; the cache is emptied when full). `re.match(s, pattern [, flags [, init]])` " \
  "returns the captures — `[0]` the whole match, `[1]`..`[n]` the groups (`false` for one that took no part), " \
  "`[name]` the named groups — or nil. `re.find(...)` returns the 1-based start and end of the match. " \
  "`re.gmatch(s, pattern [, flags])` iterates over the matches' capture tables. " \
  "`re.gsub(s, pattern, replacement [, flags [, max]])` returns the new string and the count: the replacement " \
  "is a template (`$0`..`$9`, `${n}`, `${name}`, `$$` for a `$`; inline code in a config writes `$${name}`, " \
  "as `${` is the config's) or a function of the capture table returning the text (nil or false keeps the " \
  "match). `re.split(s, pattern [, flags [, max]])` returns the parts between the matches (at most max, the " \
  "last unsplit). Empty matches follow Go's regexp (and Benthos's `re_*`): one right after a match is " \
  "skipped, so `re.gsub(\"baaac\", \"a*\", \"-\")` is `-b-c-`. `re.compile(pattern [, flags])` gives a regex " \
  "with these functions as methods (`r:match(s)`, `r:gsub(s, repl)`...); `re.escape(s)` quotes s for a " \
  "pattern. Flags: `i` caseless, `m` multi-line, `s` `.` matches a newline, `x` extended, `u` UTF-8 (the " \
  "subject must be valid UTF-8, classes such as `\\w` are Unicode's), `U` ungreedy, `a` anchored, `D` `$` " \
  "only at the very end, `J` duplicate names; OpenResty's `j` and `o` change nothing (always so here). " \
  "Bounds: each match runs under PCRE2's match limit (10,000,000), a depth limit (100,000) and a heap limit " \
  "(64 MiB, inside `lua.max_memory`, as is all PCRE2 memory), so a pattern that backtracks catastrophically " \
  "(`^(a+)+$` against `aaa…a!`) fails its message within tens of milliseconds with \"re: the pattern " \
  "backtracks too much\"; loops over many matches (`gmatch`, `gsub`, `split`) stop at `lua.max_time`; a " \
  "pattern longer than 64 KiB is refused.\n" \
  "- **`time`**: times are seconds since the epoch (numbers with a fraction; a double holds about a " \
  "microsecond today). `time.now()`, `time.now_ms()`, `time.now_us()`, and `time.now_ns()` (a 64-bit " \
  "integer cdata, exact: `tonumber()` it to compute with doubles). `time.parse(text [, format [, zone]])` " \
  "returns the seconds and the nanoseconds of the second (exact). Without a format it reads RFC 3339 by its " \
  "grammar (section 5.6): `T` or `t` (or a space, by its note), `Z`, `z` or `+hh:mm`/`-hh:mm`, fractional " \
  "seconds of any length (cut past nanoseconds), ranges checked (leap years too); the leap second " \
  "`23:59:60` is accepted only at the end of a UTC day (section 5.7) and counted as the next day's first " \
  "second (POSIX time has none). With a format it reads glibc's `strptime` conversions (`%Y %m %d %H %M %S " \
  "%z %b %j %p`...) and `%f` (1 to 9 digits of a fraction), and the whole text must match; a time without " \
  "`%z` is read in zone (UTC by default), where one that a clock change skips or repeats resolves as Go's " \
  "`time.Date` does. `time.format(t [, format [, zone [, ns]]])` writes RFC 3339 (as Go's `RFC3339Nano`: " \
  "the fraction's digits only as needed, `Z` in UTC) or a `strftime` format with `%f` (microseconds), `%L` " \
  "(milliseconds), `%N` (nanoseconds) and `%:z` (`+hh:mm`); ns (from `time.parse`) replaces t's fraction " \
  "exactly. `time.offset(t, zone)` returns the zone's offset from UT in seconds at t, and its abbreviation. " \
  "Zones are IANA names (`Europe/Paris`) read from the system's tzdata (`/usr/share/zoneinfo`, once per " \
  "worker and zone), `UTC`, or fixed offsets (`+05:30`); past a zone file's last transition (2037 in " \
  "Debian's files) its POSIX TZ rule applies (RFC 8536's footer), as Python's zoneinfo reads it. `time.parse_duration(\"1h30m\")` (5400) and " \
  "`time.format_duration(5400)` (`1h30m0s`) read and write durations in seconds as Go and Benthos write " \
  "them (units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`; fractions and a sign).\n" \
  "- **`hash`**: `hash.md5(s)`, `hash.sha1(s)`, `hash.sha256(s)`, `hash.sha512(s)` and " \
  "`hash.hmac(algorithm, key, s)` (`md5`, `sha1`, `sha256`, `sha512`) from OpenSSL; `hash.xxhash64(s [, out " \
  "[, seed]])` and `hash.xxhash32` (libxxhash; canonical big-endian bytes) and `hash.crc32(s)` (zlib's, " \
  "IEEE). The last argument is the output: `\"hex\"` (the default, lower case), `\"raw\"` bytes, " \
  "`\"base64\"`, or for the 32-bit ones `\"number\"`. A webhook signature: " \
  "`hash.hmac(\"sha256\", secret, content(), \"base64\")`.\n" \
  "- **`base64`**: `base64.encode(s [, variant])`, `base64.decode(s [, variant])`: RFC 4648 in the variants " \
  "Go names `std` (the default), `rawstd` (no padding), `url` and `rawurl`; decoding is strict (only the " \
  "variant's alphabet and padding, no line breaks, no stray bits).\n" \
  "- **`hex`**: `hex.encode(s)` (lower case), `hex.decode(s)` (either case).\n" \
  "- **`url`**: `url.encode(s)` and `url.decode(s)` percent-encode everything but RFC 3986's unreserved " \
  "characters (libcurl's; right for a path segment or a query value); `url.query_encode(s)` and " \
  "`url.query_decode(s)` are the form encoding of query strings, a space as `+`.\n" \
  "- **`json`**: `json.encode(v)`, `json.decode(s)`, `json.null` (JSON's null, decoded and encoded), " \
  "`json.array(t)` and `json.object(t)` (mark t, or a new table, to encode as an array or an object even " \
  "when empty; they return it) and `json.is_array(t)`. A text that holds an empty array is decoded with " \
  "its arrays marked, so `[]` stays `[]` through `json`, `this` and `msg:json()`; an empty table a script " \
  "makes still encodes as `{}` unless marked. `json.encode` writes what lua-cjson wrote (its escapes, `/` as " \
  "`\\/`, 14 significant digits, its errors for sparse arrays, NaN and nesting past 1000 levels). Text " \
  "that jansson (which reads the texts with an empty array) refuses but lua-cjson reads — bytes that are " \
  "not UTF-8, integers beyond 64 bits — decodes without marks.\n" \
  "- **`msgpack`**: `msgpack.encode(v)`, `msgpack.decode(s)` and `msgpack.null`, MessagePack through " \
  "lua-mpack (libmpack): `this` and `json.null` encode as expected, `json.encode` writes `msgpack.null` as " \
  "null, an empty table encodes as an empty array, and input nested too deep is refused.\n\n"

#endif
