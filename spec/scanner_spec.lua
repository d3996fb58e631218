-- `scanner` of the stdin and file inputs (Benthos v4's): lines, csv,
-- re_match, chunker, decompress (gzip, zlib, flate, bzip2, lz4, zstd,
-- snappy), skip_bom, to_the_end, tar, switch; bounded memory and flagged
-- errors on bad input. Archives and compressed files are made by the real
-- tools (tar, gzip, bzip2, zstd, lz4); snappy's framing by Benthos's own
-- library (spec/fixtures/README.md).
local h = require("spec.helpers")

-- Runs stdin through scanner (YAML flow text); flagged messages come out as
-- "ERR <error>".
local function scan(scanner, input, extra)
  return h.run_config(string.format([[
input:
  stdin:
    scanner: %s%s
pipeline:
  processors:
    - catch: [{lua: {code: 'return "ERR " .. error_message()'}}]
output: {stdout: {}}
]], scanner, extra or ""), {stdin = input, timeout = 60})
end

local function ok(r)
  assert.are.equal(0, r.code, r.stderr)
  return h.lines(r.stdout)
end

-- catch passes flagged messages on after the others of their batch: compare sorted
local function sorted(t)
  table.sort(t)
  return t
end

-- Runs stdin through scanner; each message on one line, its line breaks as "|".
local function scan_flat(scanner, input)
  return ok(h.run_config(string.format([[
input:
  stdin: {scanner: %s}
pipeline:
  processors: [{lua: {code: 'return (content():gsub("\n", "|"))'}}]
output: {stdout: {}}
]], scanner), {stdin = input}))
end

local function py(code)
  local f = h.write(h.tmpname(".py"), code)
  local rc = os.execute("python3 " .. f)
  os.remove(f)
  assert.truthy(rc == 0 or rc == true)
end

describe("scanner", function()
  it("lines: custom_delimiter, and a line over max_buffer_size is flagged and truncated, not kept growing", function()
    assert.are.same({"a", "b\r|c", "d"}, scan_flat("{lines: {custom_delimiter: '||'}}", "a||b\r\nc||||d"))
    local long = string.rep("x", 5000)
    local r = scan("{lines: {max_buffer_size: 1KiB}}", "one\n" .. long .. "\ntwo\n")
    local got = ok(r)
    assert.are.same(sorted({"one", "ERR line longer than max_buffer_size (1024 bytes): truncated", "two"}), sorted(got))
    assert.matches("line longer than max_buffer_size (1024 bytes): truncated", r.stderr, 1, true)
  end)

  it("csv: a header row names the fields; quotes, separators and line breaks inside quotes, spaces kept", function()
    local got = ok(scan("{csv: {}}", 'name,note\n"Smith, J","said ""hi""\nthen left"\n  x  ,y\r\n'))
    assert.are.same({{name = "Smith, J", note = 'said "hi"\nthen left'}, {name = "  x  ", note = "y"}},
      h.decode_lines(got))
    got = ok(scan("{csv: {parse_header_row: false, custom_delimiter: ';'}}", "a;b\n1;2\n"))
    assert.are.same({{"a", "b"}, {"1", "2"}}, h.decode_lines(got))
  end)

  it("csv: malformed quotes are refused, or taken with lazy_quotes; continue_on_error goes on past them", function()
    local input = 'a,b\nx"y,z\n1,2\n'
    local got = ok(scan("{csv: {}}", input))
    assert.are.equal(1, #got)
    assert.matches('^ERR csv: row 2: .* %(the rest of the input is skipped', got[1])
    got = sorted(ok(scan("{csv: {continue_on_error: true}}", input)))
    assert.are.equal(2, #got)
    assert.matches("^ERR csv: row 2: ", got[1])
    assert.are.same({a = "1", b = "2"}, h.json.decode(got[2]))
    got = ok(scan("{csv: {lazy_quotes: true}}", input))
    assert.are.same({{a = 'x"y', b = "z"}, {a = "1", b = "2"}}, h.decode_lines(got))
    -- a row of the wrong width, a row that is not UTF-8, a quote never closed
    got = ok(scan("{csv: {continue_on_error: true}}", 'a,b\n1,2,3\n\255\254,2\n4,5\n"open,6\n'))
    assert.are.same(sorted({"ERR csv: row 2: 3 fields where the header has 2", "ERR csv: row 3: not UTF-8 text",
      '{"a":"4","b":"5"}', "ERR csv: row 5: a quoted field is not closed"}), sorted(got))
  end)

  it("csv: a row over max_buffer_size is flagged and skipped to the next line", function()
    local r = scan("{csv: {max_buffer_size: 1KiB, continue_on_error: true, parse_header_row: false}}",
      "1\n" .. string.rep("y", 100000) .. "\n2\n")
    assert.are.same(sorted({'["1"]', "ERR csv: row 2: longer than max_buffer_size (1024 bytes)", '["2"]'}), sorted(ok(r)))
  end)

  it("re_match: each message starts where the pattern matches; an over-long segment is flagged", function()
    local got = scan_flat("{re_match: {pattern: '(?m)^\\d\\d:'}}", "head\n12: one\ncont\n13: two\n14: three")
    assert.are.same({"head|", "12: one|cont|", "13: two|", "14: three"}, got)
    got = ok(scan("{re_match: {pattern: 'START', max_buffer_size: 64B}}",
      "START a " .. string.rep("z", 500) .. "START b"))
    assert.are.same(sorted({"ERR segment longer than max_buffer_size (64 bytes): truncated", "START b"}), sorted(got))
  end)

  it("chunker, to_the_end and skip_bom", function()
    assert.are.same({"abc", "def", "gh"}, ok(scan("{chunker: {size: 3}}", "abcdefgh")))
    assert.are.same({"a|b|c"}, scan_flat("{to_the_end: {}}", "a\nb\nc"))
    assert.are.same({"first", "second"}, ok(scan("{skip_bom: {}}", "\239\187\191first\nsecond\n")))
    assert.are.same({"x,y"}, ok(scan("{skip_bom: {into: {to_the_end: {}}}}", "\239\187\191x,y")))
  end)

  it("decompress: gzip (several members), zlib and flate into another scanner; bad and cut input flagged", function()
    local d = h.tmpdir()
    py(string.format([[
import gzip, zlib
d = %q
open(d + "/two.gz", "wb").write(gzip.compress(b"a\nb\n") + gzip.compress(b"c\n"))
open(d + "/z", "wb").write(zlib.compress(b"x|y|z"))
c = zlib.compressobj(wbits=-15); open(d + "/f", "wb").write(c.compress(b"raw\ndata\n") + c.flush())
open(d + "/cut.gz", "wb").write(gzip.compress(b"hello world\n" * 100)[:40])
]], d))
    local function run(alg, into, file)
      return scan(string.format("{decompress: {algorithm: %s, into: %s}}", alg, into), h.read(d .. "/" .. file))
    end
    assert.are.same({"a", "b", "c"}, ok(run("gzip", "{lines: {}}", "two.gz")))
    assert.are.same({"x", "y", "z"}, ok(run("zlib", "{lines: {custom_delimiter: '|'}}", "z")))
    assert.are.same({"raw", "data"}, ok(run("flate", "{lines: {}}", "f")))
    local got = sorted(ok(run("gzip", "{lines: {}}", "cut.gz")))
    assert.are.equal("ERR decompress: the compressed input ends early", got[1])
    assert.are.equal("hello world", got[2])
    got = ok(scan("{decompress: {algorithm: gzip}}", "not gzip at all"))
    assert.are.same({"ERR decompress: incorrect header check (the rest of the input is skipped)"}, got)
    h.rmdir(d)
  end)

  it("decompress: a gzip bomb (1 GB of zeros) is read with bounded memory", function()
    local d = h.tmpdir()
    assert.truthy(os.execute("head -c 1000000000 /dev/zero | gzip -1 > " .. d .. "/bomb.gz"))
    local cfg = h.write(d .. "/c.yaml", [[
input:
  stdin: {scanner: {decompress: {algorithm: gzip, into: {lines: {max_buffer_size: 64KiB}}}}}
output: {stdout: {}}
]])
    local code, out, err = h.sh(string.format("/usr/bin/time -f 'RSS %%M' timeout 120 %s run %s < %s/bomb.gz | wc -c",
      h.bin, cfg, d))
    h.rmdir(d)
    assert.are.equal(0, code, err)
    assert.are.equal(65536 + 1, tonumber(out))   -- one truncated line
    assert.matches("line longer than max_buffer_size", err, 1, true)
    local rss = tonumber(err:match("RSS (%d+)"))
    assert.is_true(rss < 200 * 1024, "RSS " .. rss .. " KiB")
  end)

  -- Each message as "tar_name=content" (long contents as their length),
  -- flagged ones as "ERR <error>".
  local function entries(scanner, input, extra)
    return ok(h.run_config(string.format([[
input:
  stdin:
    scanner: %s%s
pipeline:
  processors:
    - lua: {code: 'local c = content() return (meta.tar_name or "-") .. "=" .. (#c > 40 and tostring(#c) or c:gsub("\n", "|"))'}
    - catch: [{lua: {code: 'return "ERR " .. error_message()'}}]
output: {stdout: {}}
]], scanner, extra or ""), {stdin = input, timeout = 60}))
  end

  -- A tree of files and the archives the real tools make of it.
  local function archives()
    local d = h.tmpdir()
    local long = string.rep("L", 150)   -- past ustar's 100 bytes: a GNU or pax long name
    assert.truthy(os.execute(string.format([[
set -e; cd %s; mkdir -p src/sub; printf 'hello\n' > src/a.txt; printf '{"b":1}' > src/sub/b.json; : > src/empty
printf 'long name' > src/%s; head -c 5000 /dev/urandom > src/rand.bin
tar -cf x.tar -C src a.txt sub empty %s
tar -czf x.tar.gz -C src a.txt; tar -cjf x.tar.bz2 -C src a.txt
tar -cf - -C src a.txt | zstd -q > x.tar.zst; tar -cf - -C src a.txt | lz4 -q > x.tar.lz4
printf 'plain\nlines\n' > y.txt; cp %s/spec/fixtures/lines.sz s.sz
tar -cf r.tar -C src rand.bin]], d, long, long, h.shell_quote(os.getenv("PWD")))))
    return d, long
  end

  it("tar: each entry of an archive made by tar is a message, its name in metadata tar_name", function()
    local d, long = archives()
    assert.are.same({"a.txt=hello|", "sub/=", 'sub/b.json={"b":1}', "empty=", long .. "=long name"},
      entries("{tar: {}}", h.read(d .. "/x.tar")))
    -- an entry over max_buffer: flagged and truncated, the next one still read
    assert.are.same({"ERR tar: entry rand.bin longer than max_buffer (1024 bytes): truncated"},
      entries("{tar: {}}", h.read(d .. "/r.tar"), "\n    max_buffer: 1KiB"))
    assert.are.same({}, entries("{tar: {}}", ""))
    h.rmdir(d)
  end)

  it("switch: a scanner per file by its name, into tar through gzip, bzip2, zstd, lz4, snappy as Benthos reads them", function()
    local d = archives()
    local r = h.run_config(string.format([[
input:
  file:
    paths: ['%s/x.*', '%s/y.txt', '%s/s.sz', '%s/src/a.txt']
    scanner:
      switch:
        - {re_match_name: '\.tar$', scanner: {tar: {}}}
        - {re_match_name: '\.tar\.gz$', scanner: {decompress: {algorithm: gzip, into: {tar: {}}}}}
        - {re_match_name: '\.tar\.bz2$', scanner: {decompress: {algorithm: bzip2, into: {tar: {}}}}}
        - {re_match_name: '\.tar\.zst$', scanner: {decompress: {algorithm: zstd, into: {tar: {}}}}}
        - {re_match_name: '\.tar\.lz4$', scanner: {decompress: {algorithm: lz4, into: {tar: {}}}}}
        - {re_match_name: '\.sz$', scanner: {decompress: {algorithm: snappy, into: {lines: {max_buffer_size: 1MiB}}}}}
        - {re_match_name: '\.txt$', scanner: {lines: {}}}
pipeline:
  processors:
    - lua: {code: 'local c = content() return meta.path:match("[^/]+$") .. " " .. (meta.tar_name or "-") .. "=" .. (#c > 40 and tostring(#c) or c:gsub("\n", "|"))'}
    - catch: [{lua: {code: 'return meta.path:match("[^/]+$") .. " ERR " .. error_message()'}}]
output: {stdout: {}}
]], d, d, d, d), {timeout = 60})
    local got = ok(r)
    local by = {}
    for _, l in ipairs(got) do
      local f = l:match("^(%S+)")
      by[f] = by[f] or {}
      table.insert(by[f], l:sub(#f + 2))
    end
    assert.are.same({"a.txt=hello|"}, by["x.tar.gz"])
    assert.are.same({"a.txt=hello|"}, by["x.tar.bz2"])
    assert.are.same({"a.txt=hello|"}, by["x.tar.zst"])
    assert.are.same({"a.txt=hello|"}, by["x.tar.lz4"])
    assert.are.equal(5, #by["x.tar"])
    assert.are.same({"-=plain", "-=lines"}, by["y.txt"])
    -- compressed and uncompressed chunks of Benthos's framing
    assert.are.same({"-=one", "-=two", "-=70000", "-=80000", "-=three"}, by["s.sz"])
    -- a.txt matches '\.txt$' too: the first case that takes a name wins
    assert.are.same({"-=hello"}, by["a.txt"])
    -- no case takes a name: that file is one flagged message, the others go on
    r = h.run_config(string.format("input:\n  file:\n    paths: ['%s/y.txt', '%s/x.tar']\n    scanner:\n" ..
      "      switch: [{re_match_name: '\\.txt$', scanner: {lines: {}}}]\npipeline:\n  processors:\n" ..
      "    - catch: [{lua: {code: 'return \"ERR \" .. error_message()'}}]\noutput: {stdout: {}}\n", d, d))
    assert.are.same(sorted({"plain", "lines", "ERR switch: no case takes this source's name (the input is skipped)"}),
      sorted(ok(r)))
    -- stdin has no name: only a case without re_match_name takes it
    assert.are.same({"-=x"}, entries("{switch: [{re_match_name: '.', scanner: {tar: {}}}, {scanner: {lines: {}}}]}", "x\n"))
    h.rmdir(d)
  end)

  it("tar and decompress: truncated and corrupt archives are flagged and skipped, never crash", function()
    local d = archives()
    local tar = h.read(d .. "/x.tar")
    local function first_err(t)
      for _, l in ipairs(t) do if l:find("^ERR ") then return l end end
    end
    -- cut inside an entry's data, inside a header; a header whose checksum is wrong
    local cut = entries("{tar: {}}", tar:sub(1, 512 + 3))
    assert.matches("^ERR tar: entry: Truncated tar archive", first_err(cut))
    assert.matches("^ERR tar: Truncated tar archive", first_err(entries("{tar: {}}", tar:sub(1, 1024 + 100))))
    -- a bad first header is no tar at all; a later one is a damaged archive
    assert.matches("^ERR tar: Unrecognized archive format", first_err(entries("{tar: {}}", "9" .. tar:sub(2))))
    local bad = entries("{tar: {}}", tar:sub(1, 1024 + 148) .. "99999999" .. tar:sub(1024 + 157))
    assert.are.equal("a.txt=hello|", bad[1])
    assert.matches("^ERR tar: Damaged tar archive", first_err(bad))
    assert.matches("^ERR tar: ", first_err(entries("{tar: {}}", "not a tar archive at all\n")))
    -- each algorithm: cut short, and bytes that are not its format
    for alg, file in pairs({bzip2 = "x.tar.bz2", zstd = "x.tar.zst", lz4 = "x.tar.lz4", gzip = "x.tar.gz", snappy = "s.sz"}) do
      local data = h.read(d .. "/" .. file)
      local got = entries(string.format("{decompress: {algorithm: %s, into: {tar: {}}}}", alg), data:sub(1, math.floor(#data / 2)))
      assert.is_truthy(first_err(got), alg)
      got = entries(string.format("{decompress: {algorithm: %s}}", alg), "definitely not " .. alg .. " data")
      assert.matches("^ERR decompress: ", first_err(got), nil, false)
    end
    assert.are.same({"ERR decompress: the compressed input ends early"},
      entries("{decompress: {algorithm: zstd}}", h.read(d .. "/x.tar.zst"):sub(1, 20)))
    assert.are.same({"ERR decompress: snappy: the stream does not start with the framing format's stream identifier (the rest of the input is skipped)"},
      entries("{decompress: {algorithm: snappy}}", h.read(d .. "/s.sz"):sub(11)))
    h.rmdir(d)
  end)

  -- Runs sluice on a file with scanner: its stdout's size and its peak RSS.
  local function bomb(scanner, file, extra)
    local cfg = h.write(h.tmpname(".yaml"), string.format("input:\n  stdin: {scanner: %s}\n%soutput: {stdout: {}}\n",
      scanner, extra or ""))
    local code, out, err = h.sh(string.format("/usr/bin/time -f 'RSS %%M' timeout 300 %s run %s < %s | wc -c",
      h.bin, cfg, file))
    os.remove(cfg)
    assert.are.equal(0, code, err)
    local rss = tonumber(err:match("RSS (%d+)"))
    assert.is_true(rss < 200 * 1024, "RSS " .. rss .. " KiB")
    return tonumber(out), err
  end

  it("tar, bzip2, lz4, zstd bombs (1 GB of zeros each) are read with bounded memory", function()
    local d = h.tmpdir()
    -- a tar of a 1 GB entry and a small one after it, streamed into zstd
    assert.truthy(os.execute(string.format([[python3 - <<'EOF' | zstd -q -1 > %s/bomb.tar.zst
import io, sys, tarfile
class Zeros(io.RawIOBase):
    def __init__(self, n): self.n = n
    def readable(self): return True
    def readinto(self, b):
        k = min(len(b), self.n); b[:k] = bytes(k); self.n -= k; return k
t = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.GNU_FORMAT)
i = tarfile.TarInfo("zeros"); i.size = 10**9; t.addfile(i, io.BufferedReader(Zeros(10**9), 1 << 20))
i = tarfile.TarInfo("after"); i.size = 10; t.addfile(i, io.BytesIO(b"still here"))
t.close()
EOF]], d)))
    local size, err = bomb("{decompress: {algorithm: zstd, into: {tar: {}}}}", d .. "/bomb.tar.zst", "pipeline:\n" ..
      "  processors: [{lua: {code: 'return meta.tar_name .. \"=\" .. #content()'}}, {catch: [{lua: {code: 'return error_message()'}}]}]\n")
    assert.matches("tar: entry zeros longer than max_buffer (1048576 bytes): truncated", err, 1, true)
    assert.are.equal(#"tar: entry zeros longer than max_buffer (1048576 bytes): truncated\nafter=10\n", size)
    for alg, tool in pairs({bzip2 = "bzip2 -1", lz4 = "lz4 -q -1", zstd = "zstd -q -1"}) do
      assert.truthy(os.execute(string.format("head -c 1000000000 /dev/zero | %s > %s/bomb", tool, d)))
      local n, e = bomb(string.format("{decompress: {algorithm: %s, into: {lines: {max_buffer_size: 64KiB}}}}", alg), d .. "/bomb")
      assert.are.equal(65536 + 1, n, alg)   -- one truncated line
      assert.matches("line longer than max_buffer_size", e, 1, true)
    end
    h.rmdir(d)
  end)

  it("takes binary input in every scanner without losing bytes", function()
    local d = h.tmpdir()
    py(string.format([[
import random
random.seed(7)
open(%q + "/bin", "wb").write(bytes(random.getrandbits(8) for _ in range(300000)))
]], d))
    local bin = h.read(d .. "/bin")
    local r = h.run_config("input:\n  stdin: {scanner: {chunker: {size: 4KiB}}}\noutput: {stdout: {codec: all}}\n",
      {stdin = bin})
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(bin, r.stdout)
    for _, sc in ipairs({"{lines: {}}", "{csv: {continue_on_error: true}}", "{re_match: {pattern: '\\x00\\x00'}}",
                         "{decompress: {algorithm: zlib}}", "{skip_bom: {}}"}) do
      r = scan(sc, bin)
      assert.are.equal(0, r.code, sc .. ": " .. r.stderr)
    end
    h.rmdir(d)
  end)

  it("file input: each file gets its own scanner (a csv header per file)", function()
    local d = h.tmpdir()
    h.write(d .. "/1.csv", "a,b\n1,2\n")
    h.write(d .. "/2.csv", "c\n3\n")
    local r = h.run_config(string.format("input:\n  file: {paths: ['%s/*.csv'], scanner: {csv: {}}}\noutput: {stdout: {}}\n", d))
    assert.are.same({{a = "1", b = "2"}, {c = "3"}}, h.decode_lines(ok(r)))
    h.rmdir(d)
  end)

  it("lint: one scanner by name, bad fields at their line and column", function()
    local function lint(sc)
      local r = h.run_config("input:\n  stdin:\n    scanner: " .. sc .. "\noutput: {stdout: {}}\n", {cmd = "lint"})
      assert.are.equal(1, r.code)
      return r.stdout .. r.stderr
    end
    assert.matches(":3:14: scanner: name one scanner", lint("{lines: {}, csv: {}}"), 1, true)
    assert.matches(":3:21: input.stdin.scanner.tar.x: unknown field", lint("{tar: {x: 1}}"), 1, true)
    assert.matches(":3:40: re_match_name: missing closing parenthesis",
      lint("{switch: [{re_match_name: '(', scanner: {lines: {}}}]}"), 1, true)
    assert.matches(":3:35: scanner.nope: unknown field", lint("{switch: [{scanner: {nope: 1}}]}"), 1, true)
    assert.matches(":3:24: input.stdin.scanner.switch.0.scanner: missing required field", lint("{switch: [{re_match_name: x}]}"), 1, true)
    assert.matches(":3:35: pattern: missing closing parenthesis", lint("{re_match: {pattern: '(ab'}}"), 1, true)
    assert.matches(":3:31: input.stdin.scanner.chunker.size: 0 is out of range", lint("{chunker: {size: 0}}"), 1, true)
    assert.matches(":3:39: custom_delimiter: one byte", lint("{csv: {custom_delimiter: ab}}"), 1, true)
    assert.matches(':3:39: input.stdin.scanner.decompress.algorithm: unknown value "lzma"',
      lint("{decompress: {algorithm: lzma}}"), 1, true)
    assert.matches(":3:52: into.nope: unknown field", lint("{decompress: {algorithm: gzip, into: {nope: 1}}}"), 1, true)
    assert.matches(":3:40: input.stdin.scanner.lines.max_buffer_size: 0 is out of range",
      lint("{lines: {max_buffer_size: 0}}"), 1, true)
  end)
end)
