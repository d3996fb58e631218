-- `scanner` of the stdin and file inputs (Benthos v4's): lines, csv,
-- re_match, chunker, decompress, skip_bom, to_the_end; bounded memory and
-- flagged errors on bad input.
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
    assert.matches(":3:15: input.stdin.scanner.tar: the tar scanner is not in sluice", lint("{tar: {}}"), 1, true)
    assert.matches(":3:35: pattern: missing closing parenthesis", lint("{re_match: {pattern: '(ab'}}"), 1, true)
    assert.matches(":3:31: input.stdin.scanner.chunker.size: 0 is out of range", lint("{chunker: {size: 0}}"), 1, true)
    assert.matches(":3:39: custom_delimiter: one byte", lint("{csv: {custom_delimiter: ab}}"), 1, true)
    assert.matches(':3:39: input.stdin.scanner.decompress.algorithm: unknown value "bzip2"',
      lint("{decompress: {algorithm: bzip2}}"), 1, true)
    assert.matches(":3:52: into.nope: unknown field", lint("{decompress: {algorithm: gzip, into: {nope: 1}}}"), 1, true)
    assert.matches(":3:40: input.stdin.scanner.lines.max_buffer_size: 0 is out of range",
      lint("{lines: {max_buffer_size: 0}}"), 1, true)
  end)
end)
