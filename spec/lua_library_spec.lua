-- The scripts' standard library (lua/library.h): re, time, hash, base64,
-- hex, url, json's marks, msgpack. Vectors are the RFCs' and the libraries'
-- own; every attack input fails its message with a clear error, or works.
local h = require("spec.helpers")
local json = h.json

-- Runs `body` (Lua statements ending in `return value`) once as a module's
-- process(); returns {ok = true, v = value} or {ok = false, err = text}.
-- A module file, not inline code: `${` in it is Lua's, not the config's.
local function eval(body, opts)
  opts = opts or {}
  local dir = h.tmpdir()
  h.write(dir .. "/m.lua", "local M = {}\nfunction M.process(msg)\n  local function body()\n" .. body ..
    "\n  end\n  local ok, v = pcall(body)\n  if not ok then return {ok = false, err = v} end\n" ..
    "  return {ok = true, v = v}\nend\nreturn M\n")
  h.write(dir .. "/c.yaml", "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: {file: m.lua}\n" ..
    "    - lua: 'if errored() then return {ok = false, err = error_message(), uncaught = true} end'\n" ..
    "output:\n  stdout: {}\n" .. (opts.lua and ("lua:\n" .. opts.lua) or ""))
  local code, out, err = h.sh(string.format("timeout -k 5 120 %s run --log-level error %s", h.bin, dir .. "/c.yaml"),
    opts.input or '{"go":1}\n')
  h.rmdir(dir)
  assert.are.equal(0, code, err)
  local line = h.lines(out)[1]
  assert.is_not_nil(line, "no output; stderr: " .. err)
  return json.decode(line), line
end

local function value(body, opts)
  local r = eval(body, opts)
  assert.is_true(r.ok, r.err)
  return r.v
end

local function fails(body, pattern, opts)
  local r = eval(body, opts)
  assert.is_false(r.ok, "expected an error matching " .. pattern)
  assert.matches(pattern, r.err)
  return r.err
end

-- Runs inline code over stdin lines; returns the output lines.
local function inline(code, input)
  local body = code:gsub("\n", "\n        ")
  local path = h.write(h.tmpname(".yaml"), "input:\n  stdin: {}\npipeline:\n  processors:\n    - lua: |\n        " ..
    body .. "\n    - lua: 'if errored() then return {err = error_message()} end'\noutput:\n  stdout: {}\n")
  local code_, out, err = h.sh(string.format("timeout -k 5 60 %s run --log-level error %s", h.bin, path), input)
  os.remove(path)
  assert.are.equal(0, code_, err)
  return h.lines(out)
end

describe("hash", function()
  it("md5 gives RFC 1321's test suite (A.5)", function()
    assert.are.same({"d41d8cd98f00b204e9800998ecf8427e", "0cc175b9c0f1b6a831c399e269772661",
      "900150983cd24fb0d6963f7d28e17f72", "f96b697d7cb7938d525a2f31aaf161d0", "c3fcd3d76192e4007dfb496cca67e13b"},
      value('return {hash.md5(""), hash.md5("a"), hash.md5("abc"), hash.md5("message digest"), ' ..
            'hash.md5("abcdefghijklmnopqrstuvwxyz")}'))
  end)

  it("sha1, sha256 and sha512 give the FIPS 180 examples (RFC 6234)", function()
    local two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
    assert.are.same({"a9993e364706816aba3e25717850c26c9cd0d89d", "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
      "da39a3ee5e6b4b0d3255bfef95601890afd80709",
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
      "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"},
      value(string.format('local two = %q\nreturn {hash.sha1("abc"), hash.sha1(two), hash.sha1(""), ' ..
        'hash.sha256("abc"), hash.sha256(two), hash.sha256(""), hash.sha256(string.rep("a", 1000000)), ' ..
        'hash.sha512("abc"), hash.sha512("")}', two)))
  end)

  it("hmac gives RFC 4231's test cases 1, 2, 3, 6 and 7, and RFC 2202's for SHA-1", function()
    local v = value([=[
      local k1, k3, k6 = string.rep("\11", 20), string.rep("\170", 20), string.rep("\170", 131)
      local d7 = "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."
      return {
        hash.hmac("sha256", k1, "Hi There"), hash.hmac("sha512", k1, "Hi There"),
        hash.hmac("sha256", "Jefe", "what do ya want for nothing?"), hash.hmac("sha512", "Jefe", "what do ya want for nothing?"),
        hash.hmac("sha256", k3, string.rep("\221", 50)),
        hash.hmac("sha256", k6, "Test Using Larger Than Block-Size Key - Hash Key First"),
        hash.hmac("sha512", k6, "Test Using Larger Than Block-Size Key - Hash Key First"),
        hash.hmac("sha256", k6, d7),
        hash.hmac("sha1", k1, "Hi There"), hash.hmac("sha1", "Jefe", "what do ya want for nothing?"),
      }]=])
    assert.are.same({"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
      "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
      "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
      "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
      "b617318655057264e28bc0b6fb378c8ef146be00", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"}, v)
  end)

  it("gives raw bytes, base64 or a number on request", function()
    assert.are.same({32, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=", 3421780262, "cbf43926", 1095738169},
      value('return {#hash.sha256("abc", "raw"), hash.sha256("abc", "base64"), hash.crc32("123456789", "number"), ' ..
            'hash.crc32("123456789"), hash.crc32("The quick brown fox jumps over the lazy dog", "number")}'))
  end)

  it("xxhash64 and xxhash32 give xxHash's reference values (canonical, big-endian hex)", function()
    assert.are.same({"ef46db3751d8e999", "44bc2cf5ad770999", "02cc5d05", "32d153ff"},
      value('return {hash.xxhash64(""), hash.xxhash64("abc"), hash.xxhash32(""), hash.xxhash32("abc")}'))
  end)

  it("hashes huge, binary and non-UTF-8 input, and refuses what is not a string", function()
    assert.are.same({"e837a9859d6c366bd02f710156b4651218ef281664ef8d8108739d6962ed8847", 64},
      value('return {hash.sha256(string.rep("\\255\\0", 5 * 1024 * 1024)), #hash.sha256("\\255\\254")}'))
    fails('return hash.sha256({})', "bad argument #1 to '.-' %(string expected, got table%)")
    fails('return hash.hmac("sha3", "k", "d")', 'algorithm must be "md5", "sha1", "sha256" or "sha512"')
    fails('return hash.md5("x", "octal")', 'output must be "hex", "raw" or "base64"')
  end)
end)

describe("base64, hex and url", function()
  it("base64 gives RFC 4648's test vectors (section 10) both ways", function()
    local v = value([=[
      local out, back = {}, {}
      for _, s in ipairs({"", "f", "fo", "foo", "foob", "fooba", "foobar"}) do
        out[#out + 1] = base64.encode(s); back[#back + 1] = base64.decode(base64.encode(s))
      end
      return {out, back}]=])
    assert.are.same({{"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"},
      {"", "f", "fo", "foo", "foob", "fooba", "foobar"}}, v)
  end)

  it("base64 has the URL alphabet (section 5) and forms without padding, by Go's names", function()
    assert.are.same({"+/8=", "-_8=", "+/8", "-_8", "\251\255", "\251\255", "\251\255", "\251\255"}, value([=[
      local s = "\251\255"
      return {base64.encode(s), base64.encode(s, "url"), base64.encode(s, "rawstd"), base64.encode(s, "rawurl"),
        base64.decode("+/8="), base64.decode("-_8=", "url"), base64.decode("+/8", "rawstd"), base64.decode("-_8", "rawurl")}]=]))
  end)

  it("base64 refuses bad input with a clear error", function()
    fails('return base64.decode("Zm9vYg")', "not a multiple of 4")
    fails('return base64.decode("Zm9v\\nYmF")', "illegal byte 0x0a at offset 4")
    fails('return base64.decode("-_8=")', "illegal byte 0x2d at offset 0")
    fails('return base64.decode("Zm9vYg==", "rawstd")', "illegal byte 0x3d")
    fails('return base64.decode("Zh==")', "illegal trailing bits")
    fails('return base64.decode("Zg==", "hex")', 'variant must be "std", "rawstd", "url" or "rawurl"')
    assert.are.equal(3 * 1024 * 1024, value('return #base64.decode(base64.encode(string.rep("\\0\\255\\128", 1024 * 1024)))'))
  end)

  it("hex encodes lower case and decodes either case (RFC 4648 base16)", function()
    assert.are.same({"666f6f626172", "foobar", "foobar", "", "\0\255"},
      value('return {hex.encode("foobar"), hex.decode("666F6F626172"), hex.decode("666f6f626172"), hex.decode(""), hex.decode("00ff")}'))
    fails('return hex.decode("abc")', "odd length 3")
    fails('return hex.decode("zz")', "illegal byte at offset 0")
  end)

  it("url encodes RFC 3986 unreserved characters only, and the query form with '+'", function()
    assert.are.same({"a%20b%2Fc%3Fd%3D%C3%A9%26~._-", "a+b%2Bc", "a b+c", "a+b c", "\255\0", "%FF%00"}, value([=[
      return {url.encode("a b/c?d=é&~._-"), url.query_encode("a b+c"), url.query_decode("a+b%2Bc"),
        url.decode("a+b%20c"), url.decode("%ff%00"), url.encode("\255\0")}]=]))
  end)
end)

describe("re", function()
  it("matches PCRE2's own examples (testdata/testinput1)", function()
    local v = value([=[
      local function m(s, p, f) local r = re.match(s, p, f) return r and r[0] or false end
      return {m("abc", "abc"), m("xabcy", "abc"), m("ababc", "abc"), m("xbc", "abc"), m("abbbbc", "ab*bc"),
        m("abcc", "^abc$"), m("axc", "a.c"), m("ace", "a[b-d]e"), m("THE QUICK BROWN FOX", "the quick brown fox", "i"),
        re.match("ab", "(a+|b)*")[1], re.match("effgz", "(bc+d$|ef*g.|h?i(j|k))")[2]}]=])
    assert.are.same({"abc", "abc", "abc", false, "abbbbc", false, "axc", "ace", "THE QUICK BROWN FOX", "b", false}, v)
  end)

  it("gives numbered and named captures, as PCRE2's pcre2pattern examples", function()
    local v = value([=[
      local m = re.match("2026-12-04", "(?<date> (?<year>(\\d\\d)?\\d\\d) - (?<month>\\d\\d) - (?<day>\\d\\d) )", "x")
      local d = re.match("Sat", "(?J)(?:(?<DN>Mon|Fri|Sun)(?:day)?|(?<DN>Sat)(?:urday)?)")
      return {m[0], m[1], m[2], m[3], m.date, m.year, m.month, m.day, d.DN}]=])
    assert.are.same({"2026-12-04", "2026-12-04", "2026", "20", "2026-12-04", "2026", "12", "04", "Sat"}, v)
  end)

  it("find, gmatch, gsub and split, with Go's rule for empty matches", function()
    local v = value([=[
      local all = {}
      for m in re.gmatch("a1b22c333", "\\d+") do all[#all + 1] = m[0] end
      local a, b = re.find("abcabc", "c", nil, 4)
      local g1, n1 = re.gsub("baaac", "a*", "-")
      local g2 = re.gsub("John Smith", "(?<first>\\w+)\\s(?<last>\\w+)", "${last}, $1 $$")
      local g3, n3 = re.gsub("a1b2c3", "\\d", function(m) return "<" .. m[0] .. ">" end, nil, 2)
      return {all, a, b, g1, n1, g2, g3, n3, re.split("a,b,,c", ","), re.split("abc", ""), re.split("a,b,c", ",", nil, 2),
        re.split("", ","), re.find("abc", "z") == nil}]=])
    assert.are.same({{"1", "22", "333"}, 6, 6, "-b-c-", 3, "Smith, John $", "a<1>b<2>c3", 2, {"a", "b", "", "c"},
      {"a", "b", "c"}, {"a", "b,c"}, {""}, true}, v)
  end)

  it("compiled patterns have the functions as methods", function()
    assert.are.same({"42", 3, 3, "a<1>b<2>", {"a", "b", "c"}, {"1", "2"}}, value([=[
      local r = re.compile("(\\d+)")
      local t = {}
      for m in r:gmatch("x1y2") do t[#t + 1] = m[1] end
      local f, e = r:find("zz9")
      return {r:match("x42")[1], f, e, (r:gsub("a1b2", "<$1>")), r:split("a1b2c"), t}]=]))
  end)

  it("escapes text for a pattern", function()
    assert.are.same({"a\\.b\\*c\\$", 2, "1+1=2?"}, value([=[
      return {re.escape("a.b*c$"), (re.find("x.y", re.escape("."))), re.match("is 1+1=2? yes", re.escape("1+1=2?"))[0]}]=]))
  end)

  it("has flags: i m s x u U, and refuses unknown ones", function()
    assert.are.same({"ABC", "b", "a\nb", "ab", "ÀÉ", "aaa"}, value([=[
      return {re.match("ABC", "abc", "i")[0], re.match("a\nb", "^b$", "m")[0], re.match("a\nb", "a.b", "s")[0],
        re.match("ab", "a b", "x")[0], re.match("ÀÉ!", "^\\w+", "u")[0], re.match("aaa", "a+?a", "U")[0]}]=]))
    fails('return re.match("a", "a", "q")', "unknown flag 'q'")
  end)

  it("fails a catastrophic pattern (ReDoS) with a clear error instead of hanging", function()
    local err = fails('return re.match(string.rep("a", 40) .. "!", "^(a+)+$")', "backtracks too much")
    assert.matches("match limit exceeded", err)
    -- uncaught, it fails the message with the script's line
    local r = eval('return re.match(string.rep("a", 40) .. "!", "^(a|aa)+$")')
    assert.is_false(r.ok)
    fails('return re.match(string.rep("a", 5000) .. "!", "^(a+)+$", "u")', "backtracks too much")
  end)

  it("stops a loop over many matches at lua.max_time, inside the C call", function()
    -- Each match looks ahead to the end of the subject: run to its end, this
    -- gsub would take about n²/2 = 5·10^11 steps (minutes, past the spec's
    -- timeout); PCRE2's match limit bounds each match, the guard the loop.
    local path = h.write(h.tmpname(".yaml"), [=[
input:
  stdin: {}
pipeline:
  processors:
    - lua: |
        local s = re.gsub(string.rep("x", 1000000), "x(?=x*$)", "y")
        meta.after = "ran"
    - lua: 'return {err = error_message(), after = meta.after}'
output:
  stdout: {}
lua:
  max_time: 100ms
]=])
    local code, out, err = h.sh(string.format("timeout -k 5 60 %s run --log-level error %s", h.bin, path), "{}\n")
    os.remove(path)
    assert.are.equal(0, code, err)
    local v = json.decode(h.lines(out)[1])
    assert.matches("time budget exceeded", v.err)
    assert.is_nil(v.after)
  end)

  it("refuses an invalid pattern, a bad template and a too large pattern", function()
    fails('return re.match("abc", "(")', "re: bad pattern at offset 1: missing closing parenthesis")
    fails('return re.match("abc", "[z-a]")', "re: bad pattern at offset 3: range out of order")
    fails('return re.gsub("abc", "b", "${nope}")', 'no group named "nope"')
    fails('return re.gsub("abc", "b", "$x")', "'%$' must be followed by")
    fails('return re.gsub("abc", "(b)", "$2")', "no group 2")
    fails('return re.match("abc", string.rep("a", 70000))', "bad pattern")
  end)

  it("handles empty, huge and non-UTF-8 subjects", function()
    assert.are.same({"", 10000000, "\255", true}, value([=[
      local big = string.rep("ab", 5000000)
      local _, n = re.gsub(big, "a", "")
      return {re.match("", "^$")[0], n * 2, re.match("\255", ".")[0], re.match("", "a") == nil}]=],
      {lua = "  max_time: 60s\n"}))
    fails('return re.match("\\255abc", "b", "u")', "subject is not valid UTF%-8 at byte 1")
  end)

  it("keeps its cache bounded: many distinct patterns run in bounded memory", function()
    assert.are.equal(20000, value([=[
      local n = 0
      for i = 1, 20000 do if re.find("x" .. i, "x" .. i .. "$") then n = n + 1 end end
      return n]=], {lua = "  max_memory: 4MiB\n  max_time: 60s\n"}))
  end)
end)

describe("time", function()
  it("parses RFC 3339's examples (section 5.8), its leap seconds included", function()
    local v = value([=[
      local out = {}
      for _, s in ipairs({"1985-04-12T23:20:50.52Z", "1996-12-19T16:39:57-08:00", "1990-12-31T23:59:60Z",
        "1990-12-31T15:59:60-08:00", "1937-01-01T12:00:27.87+00:20"}) do
        local sec, ns = time.parse(s)
        out[#out + 1] = {sec, ns}
      end
      return out]=])
    assert.are.same({{482196050.52, 520000000}, {851042397, 0}, {662688000, 0}, {662688000, 0},
      {-1041337172.13, 870000000}}, v)
  end)

  it("follows RFC 3339's grammar: lower-case t and z, a space, nanoseconds; refuses the rest", function()
    assert.are.same({482196050, 482196050, 482196050, 123456789, 1709164800}, value([=[
      local _, ns = time.parse("1985-04-12T23:20:50.1234567899Z")
      return {time.parse("1985-04-12t23:20:50z"), time.parse("1985-04-12 23:20:50Z"),
        time.parse("1985-04-12T23:20:50+00:00"), ns, (time.parse("2024-02-29T00:00:00Z"))}]=]))
    for s, why in pairs({["1985-04-12T23:20:50.5"] = "an offset", ["1985-04-12T23:20:50.Z"] = "followed by digits",
      ["1985-13-12T23:20:50Z"] = "month out of range", ["2023-02-29T00:00:00Z"] = "day out of range",
      ["1985-04-12T24:00:00Z"] = "hour out of range", ["1985-04-12T23:20:61Z"] = "second out of range",
      ["1985-04-12T23:20:60Z"] = "leap second", ["1985-04-12T23:20:50+24:00"] = "offset out of range",
      ["1985-04-12T23:20:50+0100"] = "Z or %+HH:MM", ["85-04-12T23:20:50Z"] = "YYYY%-MM%-DD",
      ["1985-04-12T23:20:50Zjunk"] = "text after", [""] = "too short", ["1985-04-12X23:20:50Z"] = "separated by T"}) do
      fails(string.format("return time.parse(%q)", s), why)
    end
  end)

  it("formats RFC 3339 with as many fractional digits as it takes, in a zone by IANA name", function()
    assert.are.same({"1985-04-12T23:20:50.52Z", "2001-09-09T01:46:40Z", "2001-09-09T03:46:40+02:00",
      "1985-04-12T23:20:50.123456789Z", "2026-01-15T07:00:00-05:00", "2026-07-15T08:00:00-04:00", "0001-01-01T00:00:00Z"},
      value([=[
      return {time.format(482196050.52), time.format(1e9), time.format(1e9, nil, "Europe/Paris"),
        time.format(482196050, nil, nil, 123456789), time.format(time.parse("2026-01-15T12:00:00Z"), nil, "America/New_York"),
        time.format(time.parse("2026-07-15T12:00:00Z"), nil, "America/New_York"), time.format(-62135596800)}]=]))
  end)

  it("formats and parses strftime/strptime formats, with %f, %L, %N and %:z", function()
    assert.are.same({"1985-04-12 23:20:50.520000", "520 520000000", "Fri, 12 Apr 1985 23:20:50 +0000",
      "CEST +0200 +02:00", 482196050, 482196050.52, 482192450, 482196050, 474423650},
      value([=[
      local t = 482196050.52
      return {time.format(t, "%Y-%m-%d %H:%M:%S.%f"), time.format(t, "%L %N"), time.format(t, "%a, %d %b %Y %H:%M:%S %z"),
        time.format(1e9, "%Z %z %:z", "Europe/Berlin"),
        time.parse("04/12/1985 23:20:50", "%m/%d/%Y %H:%M:%S"), time.parse("1985-04-12 23:20:50.52", "%Y-%m-%d %H:%M:%S.%f"),
        time.parse("1985-04-12 23:20:50 +0100", "%Y-%m-%d %H:%M:%S %z"),
        -- Germany kept summer time in April 1985 (from March 31), not in January
        time.parse("1985-04-13 01:20:50", "%Y-%m-%d %H:%M:%S", "Europe/Berlin"),
        (time.parse("1985-01-13 01:20:50", "%Y-%m-%d %H:%M:%S", "Europe/Berlin"))}]=]))
    assert.are.equal(128 * 9, #value('return time.format(0, string.rep("%N", 128))'))
    fails('return time.format(0, string.rep("%N", 129))', "format longer than 256 bytes")
    fails('return time.parse("12/04", "%Y-%m")', "does not match the format")
    fails('return time.parse("1985-04-12x", "%Y-%m-%d")', "text after the time")
  end)

  it("reads zones from the system's tzdata; local times in a DST gap or overlap as Go does", function()
    assert.are.same({7200, "CEST", 3600, "CET", 19800, "IST", 7200, -3600,
      -- 2026-03-08 02:30 does not exist in New York: the offset before the gap (EST) applies
      "2026-03-08T03:30:00-04:00",
      -- 2026-11-01 01:30 happens twice in New York: the earlier (EDT)
      "2026-11-01T01:30:00-04:00"}, value([=[
      local s = time.parse("2026-07-01T00:00:00Z")
      local a, b = time.offset(s, "Europe/Paris")
      local c, d = time.offset(time.parse("2026-01-01T00:00:00Z"), "Europe/Paris")
      local e, f = time.offset(s, "Asia/Kolkata")
      return {a, b, c, d, e, f, time.offset(s, "+02:00"), time.offset(s, "-01:00"),
        time.format(time.parse("2026-03-08 02:30", "%Y-%m-%d %H:%M", "America/New_York"), nil, "America/New_York"),
        time.format(time.parse("2026-11-01 01:30", "%Y-%m-%d %H:%M", "America/New_York"), nil, "America/New_York")}]=]))
    fails('return time.offset(0, "../../etc/passwd")', 'bad time zone name')
    fails('return time.offset(0, "Nowhere/Atlantis")', 'unknown time zone "Nowhere/Atlantis"')
    fails('return time.offset(0, "zone.tab")', "bad time zone name")
  end)

  it("agrees with Python's zoneinfo on the same tzdata, past 2037 too (the files' POSIX TZ rules)", function()
    local code, cases, err = h.sh([[python3 -c '
import json, random
from datetime import datetime
from zoneinfo import ZoneInfo
random.seed(15)
out = []
for z in ["Europe/Paris", "America/New_York", "Australia/Sydney", "America/Santiago", "Asia/Kolkata",
          "Pacific/Auckland", "Europe/London", "Asia/Tehran", "America/Sao_Paulo", "Pacific/Chatham"]:
    for t in [random.randint(-2000000000, 4102444800) for _ in range(40)]:
        out.append([z, t, int(datetime.fromtimestamp(t, ZoneInfo(z)).utcoffset().total_seconds())])
print(json.dumps(out))']])
    assert.are.equal(0, code, err)
    assert.are.same({}, value([=[
      local bad = {}
      for _, c in ipairs(msg:json()) do
        local off = time.offset(c[2], c[1])
        if off ~= c[3] then bad[#bad + 1] = c[1] .. " at " .. c[2] .. ": " .. off .. ", zoneinfo: " .. c[3] end
      end
      return bad]=], {input = cases}))
  end)

  it("parses and formats durations as Go does", function()
    assert.are.same({5400, 0.3, -5400, 9900, 1e-6, 1e-6, 0, 90.5, "1h30m0s", "1.5ms", "0s", "1m30.5s", "1ns", "-2h0m0s",
      "1.5µs"}, value([=[
      return {time.parse_duration("1h30m"), time.parse_duration("300ms"), time.parse_duration("-1.5h"),
        time.parse_duration("2h45m"), time.parse_duration("1us"), time.parse_duration("1µs"), time.parse_duration("0"),
        time.parse_duration("1m30.5s"), time.format_duration(5400), time.format_duration(0.0015),
        time.format_duration(0), time.format_duration(90.5), time.format_duration(1e-9), time.format_duration(-7200),
        time.format_duration(1.5e-6)}]=]))
    for _, s in ipairs({"", "1", "1x", "h", "-", "1h-5m"}) do
      fails(string.format("return time.parse_duration(%q)", s), "duration")
    end
  end)

  it("has clocks in s, ms, µs and ns that agree", function()
    local v = value([=[
      local s, ms, us, ns = time.now(), time.now_ms(), time.now_us(), time.now_ns()
      return {math.abs(ms / 1000 - s) < 5, math.abs(us / 1e6 - s) < 5, math.abs(tonumber(ns) / 1e9 - s) < 5,
        ms == math.floor(ms), tostring(ns):sub(-2), s > 1.7e9}]=])
    assert.are.same({true, true, true, true, "LL", true}, v)
  end)
end)

describe("json", function()
  it("keeps [] an array and {} an object through decode and encode", function()
    assert.are.same({"[]", '{"a":[]}', '[[],{}]', "{}", '{"x":[1,[]]}', true, false},
      value([=[
      local t = json.decode('{"x":[1,[]]}')
      return {json.encode(json.decode("[]")), json.encode(json.decode('{"a":[]}')), json.encode(json.decode("[[],{}]")),
        json.encode(json.decode("{}")), json.encode(t), json.is_array(t.x), json.is_array(t)}]=]))
  end)

  it("keeps [] through `this` when the object is re-encoded, and a message that is []", function()
    local out = inline("this.b.y = 1\nthis.n = #this.a", '{"a":[],"b":{},"c":[[]]}\n')
    assert.are.same({a = {}, b = {y = 1}, c = {{}}, n = 0}, json.decode(out[1]))
    assert.matches('"a":%[%]', out[1])
    assert.matches('"c":%[%[%]%]', out[1])
    local top = inline("return this", "[]\n[1,2]\n")
    assert.are.same({"[]", "[1,2]"}, top)
  end)

  it("marks tables with json.array and json.object; json.null is null", function()
    assert.are.same({"[]", "{}", '{"1":1,"2":2}', '[1,null,3]', '{"a":null}', '[null]', true}, value([=[
      local a = json.array({})
      return {json.encode(a), json.encode(json.object()), json.encode(json.object({1, 2})),
        json.encode(json.array({1, nil, 3})), json.encode({a = json.null}), json.encode(json.decode("[null]")),
        json.decode("null") == json.null}]=]))
    fails('return json.array("x")', "json.array: a table expected, got string")
    fails('return json.object(setmetatable({}, {}))', "json.object: the table has a metatable of its own")
  end)

  it("writes what lua-cjson wrote: its escapes, numbers and errors", function()
    assert.are.same({'"\\/\\u0001\\b\\t\\n\\f\\r\\"\\\\\\u007f\\u001f"', "0.1", "1e+15", "-0", "9.007199254741e+15",
      "[1,2,null,4]", '{"1":1,"2":2,"x":1}'}, value([=[
      return {json.encode("/\1\b\t\n\f\r\"\\\127\31"), json.encode(0.1), json.encode(1e15), json.encode(-0.0),
        json.encode(2^53), json.encode({1, 2, [4] = 4}), json.encode({1, 2, x = 1})}]=]))
    fails('return json.encode({[1] = 1, [20] = 2})', "Cannot serialise table: excessively sparse array")
    fails('return json.encode(0/0)', "Cannot serialise number: must not be NaN or Inf")
    fails('return json.encode({[true] = 1})', "Cannot serialise boolean: table key must be a number or string")
    fails('return json.encode(print)', "Cannot serialise function: type not supported")
    fails('local t = {} t.t = t return json.encode(t)', "Cannot serialise, excessive nesting %(1001%)")
  end)

  it("decodes non-UTF-8 text (lua-cjson's way: without marks), huge arrays and deep nesting, or fails clearly", function()
    assert.are.same({"\255", 1000000, "{}"}, value([=[
      local v = json.decode('["\255", []]')
      local big = json.decode("[" .. string.rep("0,", 999999) .. "0]")
      return {v[1], #big, json.encode(v[2])}]=]))
    fails('return json.decode(string.rep("[", 100000) .. string.rep("]", 100000))', "too many nested data structures")
    fails('return json.decode("[1,]")', "Expected value but found")
    fails('return json.decode("")', "Expected value but found")
  end)

  -- lua/json.c decode_flat takes flat objects; lua-cjson everything else
  it("decodes flat objects as lua-cjson does (values, whitespace, null, duplicates) and leaves the rest to it", function()
    assert.are.same({
      "region=eu-west:string,tier=gold:string",
      "a=1:number,b=-25:number,c=true:boolean,d=false:boolean,e=null:userdata",
      "m=-123456789012345:number,n=123456789012345:number",
      "n=1234567890123456:number", 'x=a"b:string', "x=\195\169:string", "x=1.5:number", "x=1000:number",
      "x=-0:number", "x=0:number", "x=7:number", "x=16:number", "a=2:number", "", "",
      "error: Expected the end but found invalid token at character 9",
      "error: Expected object key string but found T_OBJ_END at character 8",
      "error: Expected comma or object end but found T_END at character 7",
      "error: Expected value but found invalid token at character 6",
      "a=[]:table", 'a={"b":1}:table', "\195\169=\195\188:string", "a=x\1y:string",
      "error: Expected value but found invalid number at character 6",
      "error: Expected comma or object end but found T_STRING at character 8",
      "error: Expected object key string but found invalid token at character 2",
      "error: Expected colon but found T_NUMBER at character 6",
      "error: Expected value but found unexpected end of string at character 8", "a=1:number",
      "error: Expected value but found invalid token at character 6",
      "error: Expected comma or object end but found invalid token at character 10",
      "error: Expected comma or object end but found invalid token at character 7",
      "k1=1:number,k10=10:number,k11=11:number,k12=12:number,k2=2:number,k3=3:number,k4=4:number,k5=5:number," ..
        "k6=6:number,k7=7:number,k8=8:number,k9=9:number"}, value([=[
      local texts = {'{"region":"eu-west","tier":"gold"}', ' { "a" : 1 , "b" : -25 , "c" : true , "d" : false , "e" : null } ',
        '{"n":123456789012345,"m":-123456789012345}', '{"n":1234567890123456}', '{"x":"a\\"b"}', '{"x":"\\u00e9"}',
        '{"x":1.5}', '{"x":1e3}', '{"x":-0}', '{"x":0}', '{"x":007}', '{"x":0x10}', '{"a":1,"a":2}', '{}', ' {\t\r\n} ',
        '{"a":1} x', '{"a":1,}', '{"a":1', '{"a":tru}', '{"a":[]}', '{"a":{"b":1}}', '{"\195\169":"\195\188"}',
        '{"a":"x\1y"}', '{"a":-}', '{"a":1 "b":2}', '{a:1}', '{"a" 1}', '{"a":"b\0c"}', '{"a":1}\0', '{"a":nul}',
        '{"a":nullx}', '{"a":1x}',
        '{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12}'}
      local out = {}
      for i, s in ipairs(texts) do
        local ok, v = pcall(json.decode, s)
        if ok then
          local keys, parts = {}, {}
          for k in pairs(v) do keys[#keys + 1] = k end
          table.sort(keys)
          for _, k in ipairs(keys) do
            local x = v[k]
            local shown = x == json.null and "null" or type(x) == "table" and json.encode(x) or
              type(x) == "number" and string.format("%.17g", x) or tostring(x)
            parts[#parts + 1] = k .. "=" .. shown .. ":" .. type(x)
          end
          out[i] = table.concat(parts, ",")
        else
          out[i] = "error: " .. tostring(v)
        end
      end
      return out]=]))
  end)
end)

describe("msgpack", function()
  it("encodes and decodes the MessagePack spec's formats", function()
    assert.are.same({"81a16101", "93010203", "c0", "c3", "ca3fc00000", "cb3fb999999999999a", "a0", "cf0000000100000000", "80"}, value([=[
      local function x(v) return hex.encode(msgpack.encode(v)) end
      return {x({a = 1}), x({1, 2, 3}), x(msgpack.null), x(true), x(1.5), x(0.1), x(""), x(2^32), x({})}]=]))
    assert.are.same({1, {1, 2, 3}, true, 4294967296, "[null]"}, value([=[
      return {msgpack.decode(hex.decode("81a16101")).a, msgpack.decode(hex.decode("93010203")), msgpack.decode("\195"),
        msgpack.decode(hex.decode("cf0000000100000000")), json.encode(msgpack.decode(hex.decode("91c0")))}]=]))
  end)

  it("writes an array exactly where json.encode does: json's marks, decoded [] and {}, sizes past 16 and 65535; " ..
     "negative integers in the smallest form that holds them", function()
    assert.are.same({"90", "80", "8201010202", "81a16190", "81a16180", "80", "9301c003", "9301c003",
      "910a", "dc0010", "dd00010000", "de0010", "df00010000",
      "d0df", "d080", "d1ff7f", "d18000", "d2ffff7fff", "d280000000", "d3ffffffff7fffffff", "d3fffffffeffffffff",
      "d3ffe0000000000000"}, value([=[
      local function x(v) return hex.encode(msgpack.encode(v)) end
      local function big(n, kv)
        local t = {}
        for i = 1, n do t[kv and ("k" .. i) or i] = 1 end
        return x(t):sub(1, n < 65536 and 6 or 10)   -- the header
      end
      return {x(json.array()), x(json.object()), x(json.object({1, 2})), x(json.decode('{"a":[]}')),
        x(json.decode('{"a":{}}')), x({}), x({1, nil, 3}), x(json.array({1, nil, 3})), x(json.decode("[10]")),
        big(16), big(65536), big(16, true), big(65536, true),
        -- negative integers at each form's edge (lua-mpack's own packer gets -129, -32769, -2^32-1 wrong)
        x(-33), x(-128), x(-129), x(-32768), x(-32769), x(-2^31), x(-2^31 - 1), x(-2^32 - 1), x(-2^53)}]=]))
  end)

  it("decodes an empty array as a marked array (so it encodes back as one), every type as lua-mpack does", function()
    local v = value([=[
      local function d(h) return json.encode(msgpack.decode(hex.decode(h))) end
      local items = {"01", "ff", "d080", "d18000", "d2ffff0000", "d3ffffffffffffffff", "d3fffffffffffffffe", "cd0100",
        "ce00010000", "cf0000000100000000", "ca3fc00000", "cb3fb999999999999a", "a3616263", "d903616263",
        "da0003616263", "c4026162", "c0", "c3", "c2", "de0001a16101", "92c0c3", "d40102", "c702016162"}
      local same = {}
      for i, h in ipairs(items) do   -- after an empty array (the marking decode) as alone (lua-mpack's)
        same[i] = d("9290" .. h) == "[[]," .. d(h) .. "]" or (h .. ": " .. d("9290" .. h) .. " vs " .. d(h))
      end
      local x = json.decode('{"a":[[],{},[1,2.5,-3,"x",true,null,-129,70000,4294967296,[]]]}')
      local once = msgpack.encode(x)
      return {d("90"), d("81a16190"), d("dc0000"), d("dd00000000"), same, hex.encode(msgpack.encode(msgpack.decode(once))) == hex.encode(once)}]=])
    assert.are.same({"[]", '{"a":[]}', "[]", "[]"}, {v[1], v[2], v[3], v[4]})
    for _, ok in ipairs(v[5]) do assert.are.equal(true, ok) end
    assert.is_true(v[6])
  end)

  it("encodes `this` and json.null", function()
    local out = inline('return {hex.encode(msgpack.encode(this)), hex.encode(msgpack.encode({json.null}))}', '{"a":1}\n')
    assert.are.same({"81a16101", "91c0"}, json.decode(out[1]))
    out = inline('return hex.encode(msgpack.encode(this))', '{"a":[[],{},[{}]]}\n')
    assert.are.same({"81a16193908091" .. "80"}, out)
  end)

  it("refuses invalid, truncated and too deep input, and what it cannot encode", function()
    fails('return msgpack.decode("\\193")', "invalid msgpack string")
    fails('return msgpack.decode("\\146\\1")', "incomplete msgpack string")
    fails('return msgpack.decode("")', "incomplete msgpack string")
    fails('return msgpack.decode("\\1\\2")', "trailing data")
    fails('return msgpack.decode(string.rep("\\145", 200000) .. "\\1")', "too deep")
    fails('return msgpack.encode(print)', "can't serialize")
    fails('return msgpack.decode(1)', "a string expected, got number")
  end)
end)

describe("the library in every script", function()
  it("is there in checks and interpolations, and a script's change to it stays its own", function()
    local path = h.write(h.tmpname(".yaml"), [[
input:
  stdin: {}
pipeline:
  processors:
    - lua: 're.find = nil'
    - switch:
        - check: 're.find(this.s, "^a+$") ~= nil'
          processors:
            - lua: 'this.h = hash.sha1(this.s)'
    - lua: 'this.t = type(re.find)'
output:
  stdout: {}
]])
    local code, out, err = h.sh(string.format("timeout -k 5 60 %s run --log-level error %s", h.bin, path), '{"s":"aa"}\n{"s":"b"}\n')
    os.remove(path)
    assert.are.equal(0, code, err)
    local lines = h.lines(out)
    table.sort(lines)   -- switch passes the messages no case took first
    assert.are.same({s = "aa", h = "e0c9035898dd52fc65c41454cec9c4d2611bfb37", t = "function"}, json.decode(lines[1]))
    assert.are.same({s = "b", t = "function"}, json.decode(lines[2]))
  end)

  it("is there in ${! } interpolations", function()
    local dir = h.tmpdir()
    local path = h.write(dir .. "/c.yaml", [[
input:
  stdin: {}
output:
  file:
    path: ']] .. dir .. [[/${! hash.md5(this.k) }-${! time.format(0, "%Y") }.json'
]])
    local code, _, err = h.sh(string.format("timeout -k 5 60 %s run --log-level error %s", h.bin, path), '{"k":"abc"}\n')
    assert.are.equal(0, code, err)
    assert.is_not_nil(h.read(dir .. "/900150983cd24fb0d6963f7d28e17f72-1970.json"))
    h.rmdir(dir)
  end)
end)
