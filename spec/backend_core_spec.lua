-- moonbox.backend: the protocol's shared text semantics (paths, read, edit, glob, grep).
local core = require "moonbox.backend"

local function fails(code, pattern, ok, msg, got)
  assert.is_nil(ok)
  assert.equal(code, got)
  if pattern then assert.matches(pattern, msg, 1, true) end
end

describe("moonbox.backend", function()
  describe("normalize", function()
    it("maps every spelling of the root to /", function()
      for _, p in ipairs { "", ".", "./", "/.", "/", "//", "/./." } do
        assert.equal("/", core.normalize(p))
      end
    end)

    it("collapses slashes and dots and drops a trailing slash", function()
      assert.equal("/a/b/c", core.normalize("/a//b/./c"))
      assert.equal("/a/b", core.normalize("a/b/"))
      assert.equal("/notes.md", core.normalize("./notes.md"))
      assert.equal("/a..b.txt", core.normalize("a..b.txt"))
      assert.equal("/файл 🚀.txt", core.normalize("файл 🚀.txt"))
    end)

    it("refuses .., a leading ~, NUL bytes and over-long names with INVALID", function()
      fails("INVALID", "'..'", core.normalize("../x"))
      fails("INVALID", "'..'", core.normalize("/a/../b"))
      fails("INVALID", "'~'", core.normalize("~/secret"))
      fails("INVALID", "NUL", core.normalize("a\0b"))
      fails("INVALID", "255 bytes", core.normalize(("x"):rep(4096)))
      fails("INVALID", "4095 bytes", core.normalize(("/abcdefgh"):rep(500)))
    end)

    it("raises on a wrong argument type", function()
      assert.has_error(function() core.normalize(nil) end,
        "bad argument #1 to 'normalize' (string expected, got nil)")
    end)

    it("formats one display line and counts lines like read", function()
      assert.equal("abc", core.format_line("abc\r"))
      assert.equal(("x"):rep(2000) .. " [... line cut: 5 more characters]", core.format_line(("x"):rep(2005)))
      assert.equal(0, core.count_lines(""))
      assert.equal(2, core.count_lines("a\nb\n"))
      assert.equal(3, core.count_lines("a\nb\n\n"))
      assert.has_error(function() core.format_line() end)
      assert.has_error(function() core.count_lines({}) end)
    end)

    it("finds a path below a root", function()
      assert.equal("b/c", core.under("/a", "/a/b/c"))
      assert.equal("", core.under("/a", "/a"))
      assert.equal("a/b", core.under("/", "/a/b"))
      assert.is_nil(core.under("/a", "/ab/c"))
      assert.has_error(function() core.under("/a") end)
    end)
  end)

  describe("format_read", function()
    it("numbers lines with %6d and a tab; a trailing newline adds no line", function()
      assert.equal("     1\ta\n     2\tb", core.format_read("a\nb\n"))
      assert.equal("     1\ta\n     2\tb", core.format_read("a\nb"))
      assert.equal("     1\t\n     2\tb", core.format_read("\nb"))
    end)

    it("reads an empty file as an empty string", function()
      assert.equal("", core.format_read(""))
    end)

    it("slices with a 0-based offset and a limit, and says how many lines remain", function()
      local ten = {}
      for i = 1, 10 do ten[i] = "Line " .. i end
      local text = table.concat(ten, "\n") .. "\n"
      local out = core.format_read(text, 4, 3)
      assert.equal("     5\tLine 5\n     6\tLine 6\n     7\tLine 7\n\n... (3 more lines)", out)
      assert.equal("    10\tLine 10", core.format_read(text, 9, 5))
    end)

    it("uses 2000 lines by default", function()
      local lines = {}
      for i = 1, 2003 do lines[i] = "x" end
      local out = core.format_read(table.concat(lines, "\n"))
      local tail = "\n  2000\tx\n\n... (3 more lines)"
      assert.equal(tail, out:sub(-#tail))
      assert.equal(2000, core.READ_LIMIT)
    end)

    it("fails with INVALID when the offset is past the end", function()
      fails("INVALID", nil, core.format_read("a\nb\nc\n", 99))
      local _, msg = core.format_read("a\nb\nc\n", 3)
      assert.equal("Offset 3 exceeds file length (3 lines)", msg)
      _, msg = core.format_read("", 1)
      assert.equal("Offset 1 exceeds file length (0 lines)", msg)
      fails("INVALID", "offset", core.format_read("a", -1))
      fails("INVALID", "limit", core.format_read("a", 0, 0))
    end)

    it("hides the \\r of CRLF lines", function()
      assert.equal("     1\ta\n     2\tb", core.format_read("a\r\nb\r\n"))
    end)

    it("cuts a line longer than 2000 characters with a visible marker", function()
      local out = core.format_read(("é"):rep(2500))
      assert.equal("     1\t" .. ("é"):rep(2000) .. " [... line cut: 500 more characters]", out)
      assert.equal(("y"):rep(2000), core.format_read(("y"):rep(2000)):sub(8))
    end)

    it("refuses binary content with BINARY, pointing at read_bytes", function()
      fails("BINARY", "read_bytes", core.format_read("PNG\0\1\2", 0, 10, "/x.png"))
      fails("BINARY", "/x.png", core.format_read("PNG\0\1\2", 0, 10, "/x.png"))
      fails("BINARY", "invalid UTF-8", core.format_read("ok\n\xff\xfe"))
      fails("BINARY", nil, core.format_read("\xed\xa0\x80")) -- a UTF-16 surrogate
      fails("BINARY", nil, core.format_read("\xc0\xaf")) -- overlong
      assert.is_true(core.is_binary("a\0"))
      assert.is_false(core.is_binary("héllo 世界 🌍"))
      assert.is_false(core.is_binary(("x"):rep(9000) .. "\0")) -- NUL past the first 8 KiB
    end)

    it("raises on wrong argument types", function()
      assert.has_error(function() core.format_read(nil) end,
        "bad argument #1 to 'format_read' (string expected, got nil)")
      assert.has_error(function() core.format_read("a", "x") end)
    end)
  end)

  describe("apply_edit", function()
    it("replaces one exact occurrence", function()
      local out, n = core.apply_edit("Hello, World!\n", "World", "Universe")
      assert.equal("Hello, Universe!\n", out)
      assert.equal(1, n)
    end)

    it("is byte-exact: CRLF, NUL-free odd bytes and a missing final newline survive", function()
      local out = core.apply_edit("a\r\nb\r\nc", "b", "B")
      assert.equal("a\r\nB\r\nc", out)
    end)

    it("refuses several occurrences without replace_all, with the count", function()
      fails("NOT_UNIQUE", "3 times", core.apply_edit("x\nx\nx\n", "x", "y"))
      local _, msg = core.apply_edit("x\nx\nx\n", "x", "y")
      assert.matches("lines 1, 2, 3", msg, 1, true)
      local out, n = core.apply_edit("x\nx\nx\n", "x", "y", true)
      assert.equal("y\ny\ny\n", out)
      assert.equal(3, n)
    end)

    it("counts non-overlapping matches", function()
      local out, n = core.apply_edit("aaaa", "aa", "b", true)
      assert.equal("bb", out)
      assert.equal(2, n)
    end)

    it("refuses empty old text and old == new with INVALID", function()
      fails("INVALID", "empty", core.apply_edit("abc", "", "x"))
      fails("INVALID", "same", core.apply_edit("abc", "b", "b"))
    end)

    it("refuses binary content with BINARY", function()
      fails("BINARY", "binary", core.apply_edit("a\0b", "a", "c"))
    end)

    it("explains a near miss: tabs vs spaces", function()
      local ok, msg, code = core.apply_edit("def f():\n\treturn 1\n", "def f():\n    return 1\n", "x", false, "/f.py")
      fails("NOT_FOUND", "edit /f.py: old text not found", ok, msg, code)
      assert.matches("lines 1-2", msg, 1, true)
      assert.matches("line 2: indentation differs (tabs vs spaces): the file has 1 tab, old text has 4 spaces",
        msg, 1, true)
    end)

    it("explains a near miss: CRLF line endings", function()
      local _, msg, code = core.apply_edit("x = 1\r\ny = 2\r\n", "x = 1\ny = 2", "z")
      assert.equal("NOT_FOUND", code)
      assert.matches("The file uses CRLF", msg, 1, true)
    end)

    it("explains a near miss: trailing spaces", function()
      local _, msg = core.apply_edit("x = 1   \ny = 2\n", "x = 1\ny = 2", "z")
      assert.matches("line 1: trailing whitespace differs: the file has 3 spaces, old text has none", msg, 1, true)
    end)

    it("explains a near miss: different text on the closest line", function()
      local _, msg = core.apply_edit("local a = 1\nfunction foo(bar)\n  return bar\nend\n",
        "function foo(baz)\n  return bar", "z")
      assert.matches("Closest match: lines 2-3", msg, 1, true)
      assert.matches("line 2: text differs at column 16", msg, 1, true)
      assert.not_matches("line 3", msg, 1, true)
    end)

    it("says when nothing resembles old text", function()
      local _, msg = core.apply_edit("alpha\nbeta\n", "completely unrelated words", "z")
      assert.matches("No line of the file resembles old text", msg, 1, true)
    end)

    it("diagnoses a 10,000-line file quickly", function()
      local lines = {}
      for i = 1, 10000 do lines[i] = ("    value_%d = compute(%d)"):format(i, i) end
      local text = table.concat(lines, "\n")
      local t = os.clock()
      for _ = 1, 20 do
        local _, msg = core.apply_edit(text, "\tvalue_7000 = compute(7000)", "x")
        assert.matches("line 7000: indentation differs", msg, 1, true)
      end
      assert.is_true(os.clock() - t < 1)
    end)

    it("shows only the differing lines of a long block, and stays bounded on repetitive files", function()
      local file = ("x = 1\n"):rep(20000)
      local old = ("x = 1\n"):rep(3000) .. "y = 2\n"
      local t = os.clock()
      local _, msg = core.apply_edit(file, old, "z")
      assert.is_true(os.clock() - t < 1)
      assert.matches("Closest match: lines 1-3001 (similar text); the file has:\n  3001\tx = 1\n", msg, 1, true)
      assert.matches("line 3001: text differs at column 1", msg, 1, true)
    end)

    it("raises on wrong argument types", function()
      assert.has_error(function() core.apply_edit("a", nil, "b") end,
        "bad argument #2 to 'apply_edit' (string expected, got nil)")
    end)
  end)

  describe("vectorized scans", function()
    -- A Lua reference for replace-all and for the text/binary verdict, on random inputs built
    -- to hit vector boundaries, candidates near the end and multi-byte characters.
    local script = [[
      local core = require "moonbox.backend"
      local seed = 7
      local function rand(n) seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n + 1 end
      local alpha = { "a", "b", "\n", " ", "ab", "é", "line_", "= ", "🚀", ("x"):rep(63) }
      for _ = 1, 1500 do
        local t = {}
        for i = 1, rand(60) do t[i] = alpha[rand(#alpha)] end
        local hay = table.concat(t)
        local nt = {}
        for i = 1, rand(4) do nt[i] = alpha[rand(#alpha - 1)] end
        local nd = table.concat(nt)
        local count, pos = 0, 1
        while true do
          local _, e = hay:find(nd, pos, true)
          if not e then break end
          count, pos = count + 1, e + 1
        end
        local out, n = core.apply_edit(hay, nd, "Z", true)
        if count == 0 then assert(out == nil, nd) else
          assert(n == count and out == hay:gsub(nd:gsub("%p", "%%%0"), "Z"), nd)
        end
        assert(core.is_binary(hay .. "\xff") and not core.is_binary(hay))
      end
      print("scans ok")
    ]]

    local function run(env)
      local exe = os.getenv("MOONBOX_EXE") or "build/moonbox"
      local name = os.tmpname()
      local f = assert(io.open(name, "w"))
      f:write(script)
      f:close()
      local p = assert(io.popen(env .. " " .. exe .. " run " .. name .. " 2>&1"))
      local out = p:read("a")
      p:close()
      os.remove(name)
      return out
    end

    it("agree with a Lua reference on the AVX2 and the SSE2 path", function()
      assert.equal("scans ok\n", run(""))
      assert.equal("scans ok\n", run("MOONBOX_NO_AVX2=1"))
    end)
  end)

  describe("glob", function()
    local function m(pat, path) return assert(core.glob(pat)):match(path) end

    it("matches * within a segment and ** at any depth including zero", function()
      assert.is_true(m("*.py", "a.py"))
      assert.is_false(m("*.py", "src/a.py"))
      assert.is_true(m("**/*.py", "a.py"))
      assert.is_true(m("**/*.py", "src/deep/a.py"))
      assert.is_false(m("**/*.py", "src/a.js"))
      assert.is_true(m("src/**/x.c", "src/x.c"))
      assert.is_true(m("src/**/x.c", "src/a/b/x.c"))
      assert.is_true(m("**", "a/b/c"))
      assert.is_true(m("src/**", "src")) -- zero segments, as the issue says
      assert.is_true(m("src/**", "src/a"))
      assert.is_true(m("b/*/**", "b/a.py"))
      assert.is_false(m("b/*/**", "b"))
      assert.is_true(m("*", ".hidden"))
    end)

    it("supports ?, classes with negation, braces and escapes", function()
      assert.is_true(m("?.txt", "é.txt"))
      assert.is_false(m("?.txt", "ab.txt"))
      assert.is_true(m("[a-c]x", "bx"))
      assert.is_false(m("[!a-c]x", "bx"))
      assert.is_true(m("[^a-c]x", "dx"))
      assert.is_true(m("*.{c,h}", "x.h"))
      assert.is_true(m("{src,lib}/**/*.{c,h}", "lib/a/b.c"))
      assert.is_false(m("{src,lib}/*.c", "doc/b.c"))
      assert.is_true(m("a{b,{c,d}}e", "ade"))
      assert.is_true(m("\\*.txt", "*.txt"))
      assert.is_false(m("\\*.txt", "a.txt"))
      assert.is_true(m("[ab", "[ab")) -- an unterminated class is literal
    end)

    it("ignores a leading / or ./", function()
      assert.is_true(m("/src/*.c", "src/a.c"))
      assert.is_true(m("./src/*.c", "src/a.c"))
    end)

    it("prunes directories that cannot hold a match", function()
      local g = core.glob("src/**/*.c")
      assert.is_true(g:may_match_below(""))
      assert.is_true(g:may_match_below("src"))
      assert.is_true(g:may_match_below("src/a/b"))
      assert.is_false(g:may_match_below("lib"))
      assert.is_false(core.glob("*.c"):may_match_below("src"))
    end)

    it("names the literal directories a search can start from", function()
      assert.equal("src/lib", core.glob("src/lib/**/*.c"):base())
      assert.equal("src/lib", core.glob("/src/lib/{a,b}.c"):base())
      assert.equal("src", core.glob("src/{lib,doc}/*.c"):base())
      assert.equal("", core.glob("{src,lib}/*.c"):base())
      assert.equal("", core.glob("*.c"):base())
      assert.equal("", core.glob("src"):base())
      assert.equal("a", core.glob("a/../b/*.c"):base())
      assert.equal("", core.glob("**/x/*.c"):base())
      assert.equal("", core.glob("src/**"):base()) -- ** may match nothing: "src" itself matches
      assert.equal("src", core.glob("src/*/**"):base())
    end)

    it("filters like ripgrep for grep: no slash means the basename at any depth", function()
      local g = core.glob("*.py")
      assert.is_false(g:has_slash())
      assert.is_true(g:filter("a/b/c.py"))
      local s = core.glob("src/*.py")
      assert.is_true(s:has_slash())
      assert.is_true(s:filter("src/c.py"))
      assert.is_false(s:filter("x/src/c.py"))
    end)

    it("stays fast on a pathological pattern", function()
      local g = core.glob(("*a"):rep(30) .. "b")
      local t = os.clock()
      assert.is_false(g:match(("a"):rep(200)))
      assert.is_true(os.clock() - t < 0.5)
    end)

    it("fails with INVALID on too many alternatives and raises on misuse", function()
      fails("INVALID", "1024", core.glob(("{a,b}"):rep(12)))
      assert.has_error(function() core.glob(42 and nil) end)
      local g = core.glob("*")
      g:close()
      assert.has_error(function() g:match("x") end, "attempt to use a closed Glob")
    end)
  end)

  describe("regex", function()
    it("greps lines with PCRE2, numbering them and dropping \\r", function()
      local re = assert(core.regex("TODO_\\d{3}"))
      local hits = re:grep("a\nTODO_123 x\nb\nTODO_9\r\nTODO_999\r\n")
      assert.same({ { line_number = 2, line = "TODO_123 x" }, { line_number = 5, line = "TODO_999" } }, hits)
    end)

    it("anchors ^ and $ at lines and never matches across lines", function()
      assert.same({ { line_number = 2, line = "b" } }, core.regex("^b$"):grep("a\nb\nc\n"))
      assert.same({}, core.regex("a\\s+b"):grep("a\nb\n"))
      assert.same({ { line_number = 2, line = "x a b" } }, core.regex("a\\s+b"):grep("a\nx a b\n"))
      assert.same({}, core.regex("^$"):grep("a\n"))
      assert.same({}, core.regex(""):grep(""))
    end)

    it("searches fixed strings and ignores case", function()
      assert.same({ { line_number = 1, line = "a.b" } }, core.regex("a.b", { fixed = true }):grep("a.b\naxb\n"))
      assert.same({ { line_number = 1, line = "aX" }, { line_number = 3, line = "x" } },
        core.regex("x", { fixed = true, ignore_case = true }):grep("aX\nb\nx"))
      assert.equal(2, #core.regex("ÉTÉ", { ignore_case = true }):grep("été\nÉté\n"))
    end)

    it("caps the number of results", function()
      assert.equal(2, #core.regex("x"):grep("x\nx\nx\n", 2))
    end)

    it("greps a large buffer on a worker inside a task, with the same results", function()
      local moonbox = require "moonbox"
      local big = ("filler text line\n"):rep(80000) .. "NEEDLE one\n" .. ("more\n"):rep(10) .. "NEEDLE two\r\n"
      local re = core.regex("NEEDLE \\w+")
      local inline = re:grep(big)
      local ticks, done = 0, false
      local t = moonbox.spawn(function()
        local r = re:grep(big, 0, "/big.txt")
        done = true
        return r
      end)
      local k = moonbox.spawn(function()
        while not done do
          ticks = ticks + 1
          moonbox.sleep(0)
        end
      end)
      local r = t:join()
      k:join()
      assert.same(inline, r)
      assert.same({ { line_number = 80001, line = "NEEDLE one" }, { line_number = 80012, line = "NEEDLE two" } }, r)
      assert.equal(1, #moonbox.spawn(function() return re:grep(big, 1) end):join())
      local _, msg, code = moonbox.spawn(function() return re:grep(big .. "\xff", 0, "/b.bin") end):join()
      assert.equal("BINARY", code)
      assert.matches("/b.bin", msg, 1, true)
      local evil = core.regex("(a+)+$")
      local _, msg2, code2 = moonbox.spawn(function()
        return evil:grep(("a"):rep(40) .. "b\n" .. ("x"):rep(1024 * 1024))
      end):join()
      assert.equal("INVALID", code2)
      assert.matches("too costly", msg2, 1, true)
    end)

    it("reports an invalid regex with PCRE2's message and offset", function()
      fails("INVALID", "missing closing parenthesis at offset 4", core.regex("(abc"))
    end)

    it("stops a catastrophic pattern with INVALID instead of hanging", function()
      local re = core.regex("(a+)+$")
      fails("INVALID", "too costly", re:grep(("a"):rep(40) .. "b\n"))
    end)

    it("does not search binary content", function()
      fails("BINARY", nil, core.regex("x"):grep("x\0"))
      assert.is_false(core.regex("x"):test("x\0"))
      assert.is_true(core.regex("x"):test("ax"))
    end)

    it("raises on unknown options and wrong types", function()
      assert.has_error(function() core.regex("x", { literal = true }) end)
      assert.has_error(function() core.regex(nil) end,
        "bad argument #1 to 'regex' (string expected, got nil)")
    end)
  end)

  describe("grep rules", function()
    it("skips the fixed directory list and hidden segments", function()
      assert.is_true(core.grep_skips("a/node_modules/x.js"))
      assert.is_true(core.grep_skips("build/x.c"))
      assert.is_false(core.grep_skips("build", false)) -- a file named build
      assert.is_true(core.grep_skips("build", true))
      assert.is_true(core.grep_skips(".env"))
      assert.is_false(core.grep_skips(".env", false, false))
      assert.is_true(core.grep_skips(".git/config", false, false)) -- .git always
      assert.is_false(core.grep_skips(""))
      for _, d in ipairs { ".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
        ".pytest_cache", ".ruff_cache", ".eggs", "build", "dist" } do
        assert.is_true(core.is_skipped_dir(d))
      end
      assert.is_false(core.is_skipped_dir("src"))
    end)

    it("checks grep options strictly", function()
      local o = core.grep_opts()
      assert.is_true(o.ignore_hidden)
      assert.equal(0, o.max)
      o = core.grep_opts { path = "/a", glob = "*.c", ignore_hidden = false, ignore_case = true, fixed = true, max = 3 }
      assert.same({ path = "/a", glob = "*.c", ignore_hidden = false, ignore_case = true, fixed = true, max = 3 }, o)
      assert.has_error(function() core.grep_opts { globs = "*.c" } end)
      assert.has_error(function() core.grep_opts { max = -1 } end)
      assert.has_error(function() core.grep_opts { fixed = "yes" } end)
    end)
  end)

  describe("time and base64", function()
    it("formats and parses ISO-8601 UTC", function()
      assert.equal("1970-01-01T00:00:00.000000Z", core.iso8601(0))
      assert.equal("2023-11-14T22:13:20.123456Z", core.iso8601(1700000000, 123456789))
      local s, ns = core.parse_iso8601("2023-11-14T22:13:20.123456Z")
      assert.equal(1700000000, s)
      assert.equal(123456000, ns)
      assert.equal(1700000000, (core.parse_iso8601("2023-11-14T22:13:20+00:00")))
      fails("INVALID", nil, core.parse_iso8601("yesterday"))
      fails("INVALID", nil, core.parse_iso8601("2023-13-14T22:13:20Z"))
      assert.has_error(function() core.iso8601("now") end)
    end)

    it("round-trips base64 and refuses garbage", function()
      local bytes = "\0\1\2\255\254hello"
      assert.equal(bytes, core.base64_decode(core.base64_encode(bytes)))
      assert.equal("aGk=", core.base64_encode("hi"))
      assert.equal("hi", core.base64_decode("aG\nk="))
      fails("INVALID", "invalid character", core.base64_decode("a*b"))
      fails("INVALID", "padding", core.base64_decode("aGk=aGk="))
      assert.has_error(function() core.base64_encode(nil) end)
    end)
  end)
end)
