-- The backend protocol suite: the executable definition of what a moonbox backend is.
--
-- Usage, from a spec file:
--
--   require "spec.support.conformance.backend" ("state_backend", function()
--     return moonbox.state_backend{}            -- a fresh, empty backend
--   end)
--
-- The returned function declares the whole suite (describe/it blocks) once per call. `factory()`
-- is called before every case and returns
--
--   backend [, cleanup [, caps]]
--
--   backend  any table or userdata with the protocol's methods (DESIGN.md); empty.
--   cleanup  optional function called after the case (remove a temp dir, close the backend).
--   caps     optional table of capabilities; each guards cases that only make sense for some
--            backends. The suite probes it once at declaration time (one factory() + cleanup)
--            and declares the guarded cases as pending when the capability is missing, so the
--            skip shows in busted's report instead of passing silently:
--              root = "/host/dir"  the backend is a real directory at that host path: adds the
--                                  symlink, absolute-host-path and file-mode cases (the case
--                                  may create files and links under root directly);
--              pcre = false        grep implements only a regex subset (no lookaround or
--                                  backreferences): the cases that need full PCRE are skipped.
--              mounts = { "mnt" }  names the backend lists at its root whatever it holds (a
--                                  composite's routes): root listings leave them out.
--
-- Cases seed files only through `write` (except the `root` cases). Everything is pinned the same
-- for every backend: where the reference (pydantic-ai-backend) differed between its backends,
-- issue 2 item 5 fixed one behaviour and this suite checks that one.
local busted = require "busted"

-- Expected failure: nil, "<message>", CODE; returns the message.
local function failure(code, r, msg, got_code)
  local assert = busted.assert
  assert.is_nil(r, "expected a failure (" .. tostring(code) .. "), got a result")
  assert.is_string(msg)
  assert.is_string(got_code)
  if type(code) == "table" then
    local ok = false
    for _, c in ipairs(code) do ok = ok or c == got_code end
    assert.is_true(ok, "code " .. tostring(got_code) .. " not in {" .. table.concat(code, ", ") .. "}: " .. msg)
  elseif code ~= nil then
    assert.equal(code, got_code, msg)
  else
    assert.matches("^[A-Z][A-Z0-9_]+$", got_code)
  end
  return msg
end

local function names(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.name end
  return out
end

local function paths(list)
  local out = {}
  for i, e in ipairs(list) do out[i] = e.path end
  return out
end

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

local function numbered(from, lines)
  local out = {}
  for i, l in ipairs(lines) do out[i] = string.format("%6d\t%s", from + i - 1, l) end
  return table.concat(out, "\n")
end

-- Long enough for a whole-second clock to tick over.
local function sleep(seconds) os.execute("sleep " .. seconds) end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local ISO_UTC = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%.%d]*"

local function iso_ok(s)
  return type(s) == "string" and s:match(ISO_UTC) ~= nil and (s:match("Z$") or s:match("%+00:00$")) ~= nil
end

return function(label, factory)
  local describe, it, pending = busted.describe, busted.it, busted.pending
  local before_each, after_each = busted.before_each, busted.after_each
  local assert = busted.assert

  -- Probe the capabilities once.
  local caps
  do
    local _, cleanup, c = factory()
    caps = c or {}
    if cleanup then cleanup() end
  end
  -- caps.root must be given; caps.pcre is assumed unless it is false.
  local function has(cap)
    if cap == "pcre" then return caps.pcre ~= false end
    return caps[cap] ~= nil and caps[cap] ~= false
  end
  local function it_if(cap, why, name, fn)
    if has(cap) then
      it(name, fn)
    else
      pending(name .. " [needs caps." .. cap .. ": " .. why .. "]")
    end
  end

  -- A root listing without the entries caps.mounts says are always there.
  local function unmounted(list)
    if not caps.mounts or type(list) ~= "table" then return list end
    local skip, out = {}, {}
    for _, name in ipairs(caps.mounts) do skip[name] = true end
    for _, e in ipairs(list) do
      if not skip[e.name] then out[#out + 1] = e end
    end
    return out
  end

  describe(label .. " (backend protocol)", function()
    local b, cleanup
    before_each(function()
      local c
      b, cleanup, c = factory()
      caps = c or {}
    end)
    after_each(function()
      if cleanup then cleanup() end
      b, cleanup = nil, nil
    end)

    local function put(path, content)
      local r, msg = b:write(path, content)
      assert(r, msg)
      return r
    end

    local function bytes(path)
      local r, msg = b:read_bytes(path)
      assert(r, msg)
      return r
    end

    -- write / read_bytes -----------------------------------------------------------------------
    describe("write and read_bytes", function()
      it("round-trips text and returns the normalized virtual path", function()
        local r = b:write("/test.txt", "Hello, World!")
        assert.same({ path = "/test.txt" }, r)
        assert.equal("Hello, World!", b:read_bytes("/test.txt"))
      end)

      it("normalizes relative and untidy paths", function()
        assert.equal("/notes/a.md", b:write("notes/a.md", "a").path)
        assert.equal("/a/b/c.txt", b:write("/a//b/./c.txt", "c").path)
        assert.equal("/d.txt", b:write("./d.txt", "d").path)
        assert.equal("a", b:read_bytes("/notes/a.md"))
        assert.equal("a", b:read_bytes("notes/a.md"))
        assert.equal("c", b:read_bytes("a/b/c.txt"))
        assert.equal("d", b:read_bytes("/./d.txt"))
      end)

      it("is byte-exact: CRLF, a missing final newline, NUL bytes, every byte value", function()
        local all = {}
        for i = 0, 255 do all[#all + 1] = string.char(i) end
        local cases = {
          ["/crlf.txt"] = "one\r\ntwo\r\n",
          ["/nofinal.txt"] = "no newline at the end",
          ["/nul.bin"] = "a\0b\0\0c",
          ["/all.bin"] = table.concat(all) .. table.concat(all),
          ["/mixed.txt"] = "lf\ncrlf\r\ncr\rend",
          ["/utf8.txt"] = "Hello 世界 🌍\n",
          ["/png.bin"] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1",
          ["/blank.txt"] = "\n\n\n",
        }
        for path, content in pairs(cases) do put(path, content) end
        for path, content in pairs(cases) do assert.equal(content, bytes(path), path) end
      end)

      it("writes and reads back an empty file as an empty string", function()
        put("/empty.txt", "")
        assert.equal("", bytes("/empty.txt"))
        assert.is_true(b:exists("/empty.txt"))
      end)

      it("overwrites the whole content", function()
        put("/f.txt", "a much longer first version\nwith two lines\n")
        put("/f.txt", "short")
        assert.equal("short", bytes("/f.txt"))
      end)

      it("creates parent directories", function()
        put("/a/b/c/deep.txt", "deep")
        local l = b:ls("/a/b")
        assert.equal(1, #l)
        assert.same({ "c" }, names(l))
        assert.is_true(l[1].is_dir)
        assert.equal("deep", bytes("/a/b/c/deep.txt"))
      end)

      it("leaves nothing behind but the file (no temp files)", function()
        put("/dir/x.txt", "1")
        put("/dir/x.txt", "2")
        assert(b:edit("/dir/x.txt", "2", "3"))
        put("/dir/y.txt", "y")
        assert.same({ "x.txt", "y.txt" }, names(b:ls("/dir")))
        assert.same({ "dir" }, names(unmounted(b:ls("/"))))
      end)

      it("refuses to write over a directory", function()
        put("/dir/x.txt", "x")
        failure("EISDIR", b:write("/dir", "clobber"))
        assert.equal("x", bytes("/dir/x.txt"))
        failure(nil, b:write("/", "root"))
      end)

      it("refuses to write below a file", function()
        put("/f.txt", "file")
        failure(nil, b:write("/f.txt/child.txt", "x"))
        assert.equal("file", bytes("/f.txt"))
        assert.is_false(b:exists("/f.txt/child.txt"))
      end)

      it("read_bytes fails with ENOENT for a missing file and EISDIR for a directory", function()
        failure("ENOENT", b:read_bytes("/missing.txt"))
        put("/dir/x.txt", "x")
        failure("EISDIR", b:read_bytes("/dir"))
        failure("EISDIR", b:read_bytes("/"))
      end)
    end)

    -- exists ---------------------------------------------------------------------------------
    describe("exists", function()
      it("is true only for a regular file", function()
        put("/dir/file.txt", "x")
        assert.is_true(b:exists("/dir/file.txt"))
        assert.is_true(b:exists("dir/file.txt"))
        assert.is_false(b:exists("/dir"))
        assert.is_false(b:exists("/"))
        assert.is_false(b:exists("/missing.txt"))
        assert.is_false(b:exists("/dir/missing.txt"))
      end)

      it("is false for refused and malformed paths", function()
        put("/ok.txt", "x")
        assert.is_false(b:exists("../escape.txt"))
        assert.is_false(b:exists("/../escape.txt"))
        assert.is_false(b:exists("/ok.txt\0.png"))
        assert.is_false(b:exists("/" .. string.rep("n", 4096)))
        assert.is_false(b:exists(string.rep("d/", 2100) .. "f"))
      end)
    end)

    -- read -----------------------------------------------------------------------------------
    describe("read", function()
      it("numbers lines as %6d\\t%s, 1-based", function()
        put("/test.txt", "Hello, World!")
        assert.equal("     1\tHello, World!", b:read("/test.txt"))
        put("/m.txt", "alpha\nbeta\n\ngamma")
        assert.equal(numbered(1, { "alpha", "beta", "", "gamma" }), b:read("/m.txt"))
      end)

      it("does not add an empty line for a trailing newline", function()
        put("/a.txt", "a\nb\n")
        put("/b.txt", "a\nb")
        assert.equal("     1\ta\n     2\tb", b:read("/a.txt"))
        assert.equal("     1\ta\n     2\tb", b:read("/b.txt"))
        put("/c.txt", "a\n\n")
        assert.equal("     1\ta\n     2\t", b:read("/c.txt"))
      end)

      it("shows CRLF lines once each, without the \\r (the bytes keep it)", function()
        put("/crlf.txt", "one\r\ntwo\r\nthree\r\n")
        assert.equal(numbered(1, { "one", "two", "three" }), b:read("/crlf.txt"))
        assert.equal("one\r\ntwo\r\nthree\r\n", bytes("/crlf.txt"))
      end)

      it("takes a 0-based line offset and a limit, and says how many lines remain", function()
        local lines = {}
        for i = 1, 10 do lines[i] = "Line " .. i end
        put("/ten.txt", table.concat(lines, "\n") .. "\n")
        assert.equal(numbered(5, { "Line 5", "Line 6", "Line 7" }) .. "\n\n... (3 more lines)",
          b:read("/ten.txt", 4, 3))
        assert.equal(numbered(9, { "Line 9", "Line 10" }), b:read("/ten.txt", 8, 5))
        assert.equal(numbered(10, { "Line 10" }), b:read("/ten.txt", 9))
        assert.equal(numbered(1, { "Line 1" }) .. "\n\n... (9 more lines)", b:read("/ten.txt", 0, 1))
      end)

      it("reads 2000 lines by default", function()
        local lines = {}
        for i = 1, 2500 do lines[i] = "l" .. i end
        put("/big.txt", table.concat(lines, "\n"))
        local out = b:read("/big.txt")
        assert.matches("^     1\tl1\n", out)
        assert.matches("\n  2000\tl2000\n\n%.%.%. %(500 more lines%)$", out)
        assert.is_nil(out:find("l2001", 1, true))
        assert.equal(numbered(2001, { "l2001" }) .. "\n\n... (499 more lines)", b:read("/big.txt", 2000, 1))
      end)

      it("reads an empty file as an empty string", function()
        put("/empty.txt", "")
        assert.equal("", b:read("/empty.txt"))
        assert.equal("", b:read("/empty.txt", 0, 10))
      end)

      it("fails with INVALID for an offset past the end", function()
        put("/three.txt", "a\nb\nc\n")
        local msg = failure("INVALID", b:read("/three.txt", 99))
        assert.matches("Offset 99 exceeds file length (3 lines)", msg, 1, true)
        msg = failure("INVALID", b:read("/three.txt", 3))
        assert.matches("Offset 3 exceeds file length (3 lines)", msg, 1, true)
        put("/empty.txt", "")
        msg = failure("INVALID", b:read("/empty.txt", 1))
        assert.matches("Offset 1 exceeds file length (0 lines)", msg, 1, true)
      end)

      it("fails with INVALID for a negative offset or a limit below 1", function()
        put("/f.txt", "x\n")
        failure("INVALID", b:read("/f.txt", -1))
        failure("INVALID", b:read("/f.txt", 0, 0))
        failure("INVALID", b:read("/f.txt", 0, -5))
      end)

      it("cuts a line longer than 2000 characters with a visible marker", function()
        local long = string.rep("x", 5000)
        put("/long.txt", "short\n" .. long .. "\nafter\n")
        local out = b:read("/long.txt")
        local line2 = out:match("\n     2\t([^\n]*)")
        assert.is_string(line2)
        assert.equal(string.rep("x", 2000), line2:sub(1, 2000))
        assert.is_true(#line2 > 2000, "the cut must be marked")
        assert.is_true(#line2 < 2100, "the line must be cut")
        assert.is_nil(line2:find(string.rep("x", 2001), 1, true))
        assert.matches("\n     3\tafter$", out)
      end)

      it("reads multi-byte UTF-8 text", function()
        put("/u.txt", "héllo\nпривет\n🚀 launch\n")
        assert.equal(numbered(1, { "héllo", "привет", "🚀 launch" }), b:read("/u.txt"))
      end)

      it("fails with ENOENT for a missing file and EISDIR for a directory", function()
        failure("ENOENT", b:read("/missing.txt"))
        put("/dir/x.txt", "x")
        failure("EISDIR", b:read("/dir"))
        failure("EISDIR", b:read("/"))
      end)

      it("fails with BINARY for NUL bytes or invalid UTF-8, pointing at read_bytes", function()
        put("/nul.bin", "text\0more")
        put("/latin1.txt", "caf\xe9\n")
        put("/png.bin", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
        for _, p in ipairs({ "/nul.bin", "/latin1.txt", "/png.bin" }) do
          local msg = failure("BINARY", b:read(p))
          assert.matches("read_bytes", msg, 1, true)
        end
        assert.equal("caf\xe9\n", bytes("/latin1.txt"))
      end)
    end)

    -- edit -----------------------------------------------------------------------------------
    describe("edit", function()
      it("replaces one exact occurrence", function()
        put("/t.txt", "Hello, World!\n")
        local r = b:edit("/t.txt", "World", "Universe")
        assert.same({ path = "/t.txt", occurrences = 1 }, r)
        assert.equal("Hello, Universe!\n", bytes("/t.txt"))
      end)

      it("returns the normalized path for a relative name", function()
        put("/d/t.txt", "abc")
        assert.same({ path = "/d/t.txt", occurrences = 1 }, b:edit("d//t.txt", "b", "B"))
        assert.equal("aBc", bytes("/d/t.txt"))
      end)

      it("replaces multi-line text", function()
        put("/t.py", "def f():\n    return 1\n\ndef g():\n    return 2\n")
        assert(b:edit("/t.py", "def g():\n    return 2", "def g():\n    return 3"))
        assert.equal("def f():\n    return 1\n\ndef g():\n    return 3\n", bytes("/t.py"))
      end)

      it("fails with NOT_UNIQUE and the count when old occurs more than once", function()
        put("/t.txt", "foo bar foo baz foo\n")
        local msg = failure("NOT_UNIQUE", b:edit("/t.txt", "foo", "qux"))
        assert.matches("%f[%d]3%f[%D]", msg)
        assert.equal("foo bar foo baz foo\n", bytes("/t.txt"))
      end)

      it("replaces every occurrence with replace_all", function()
        put("/t.txt", "foo bar foo baz foo\n")
        assert.same({ path = "/t.txt", occurrences = 3 }, b:edit("/t.txt", "foo", "qux", true))
        assert.equal("qux bar qux baz qux\n", bytes("/t.txt"))
        put("/one.txt", "only once")
        assert.same({ path = "/one.txt", occurrences = 1 }, b:edit("/one.txt", "once", "twice", true))
      end)

      it("counts and replaces non-overlapping matches", function()
        put("/a.txt", "aaaaa")
        assert.same({ path = "/a.txt", occurrences = 2 }, b:edit("/a.txt", "aa", "b", true))
        assert.equal("bba", bytes("/a.txt"))
        put("/c.txt", "aaa") -- "aa" occurs once when matches may not overlap
        assert.same({ path = "/c.txt", occurrences = 1 }, b:edit("/c.txt", "aa", "b"))
        assert.equal("ba", bytes("/c.txt"))
        put("/d.txt", "abab ab")
        local msg = failure("NOT_UNIQUE", b:edit("/d.txt", "ab", "x"))
        assert.matches("%f[%d]3%f[%D]", msg)
      end)

      it("fails with INVALID when old is empty or equals new", function()
        put("/t.txt", "abc")
        failure("INVALID", b:edit("/t.txt", "", "x"))
        failure("INVALID", b:edit("/t.txt", "", "x", true))
        failure("INVALID", b:edit("/t.txt", "b", "b"))
        assert.equal("abc", bytes("/t.txt"))
      end)

      it("fails with ENOENT for a missing file and EISDIR for a directory", function()
        failure("ENOENT", b:edit("/missing.txt", "a", "b"))
        put("/dir/x.txt", "a")
        failure("EISDIR", b:edit("/dir", "a", "b"))
        assert.is_false(b:exists("/missing.txt"))
      end)

      it("fails with BINARY on binary content and leaves it untouched", function()
        local png = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
        put("/img.png", png)
        failure("BINARY", b:edit("/img.png", "IHDR", "XXXX"))
        assert.equal(png, bytes("/img.png"))
        put("/latin1.txt", "caf\xe9 ok")
        failure("BINARY", b:edit("/latin1.txt", "ok", "ko"))
        assert.equal("caf\xe9 ok", bytes("/latin1.txt"))
      end)

      it("keeps CRLF line endings and a missing final newline", function()
        put("/crlf.txt", "one\r\ntwo\r\nthree\r\n")
        assert(b:edit("/crlf.txt", "two", "2"))
        assert.equal("one\r\n2\r\nthree\r\n", bytes("/crlf.txt"))
        assert(b:edit("/crlf.txt", "one\r\n2", "1\r\n2"))
        assert.equal("1\r\n2\r\nthree\r\n", bytes("/crlf.txt"))
        put("/nofinal.txt", "a\nb")
        assert(b:edit("/nofinal.txt", "b", "c"))
        assert.equal("a\nc", bytes("/nofinal.txt"))
      end)

      it("keeps NUL bytes past the binary probe and writes NUL bytes it is given", function()
        local head = string.rep("abcdefgh", 1100) -- 8,800 bytes of text before the NUL
        put("/late-nul.txt", head .. "\0tail\n")
        assert(b:edit("/late-nul.txt", "tail", "TAIL"))
        assert.equal(head .. "\0TAIL\n", bytes("/late-nul.txt"))
        put("/n.txt", "a-b-c")
        assert.same({ path = "/n.txt", occurrences = 2 }, b:edit("/n.txt", "-", "\0", true))
        assert.equal("a\0b\0c", bytes("/n.txt"))
      end)

      it("handles UTF-8 in old and new", function()
        put("/u.txt", "привет, мир 🌍\n")
        assert(b:edit("/u.txt", "мир 🌍", "world 🚀"))
        assert.equal("привет, world 🚀\n", bytes("/u.txt"))
      end)

      describe("NOT_FOUND shows the nearest line and how it differs", function()
        local function not_found(path, old)
          local before = bytes(path)
          local msg = failure("NOT_FOUND", b:edit(path, old, "REPLACED"))
          assert.equal(before, bytes(path), "a failed edit must leave the file untouched")
          return msg
        end

        it("indentation", function()
          put("/f.py", "def f():\n    return 1\n")
          local msg = not_found("/f.py", "def f():\n  return 1")
          assert.matches("line 2", msg, 1, true)
          assert.matches("    return 1", msg, 1, true)
          assert.matches("indent", msg:lower(), 1, true)
        end)

        it("tabs versus spaces", function()
          put("/t.c", "int main(void)\n{\n\treturn 0;\n}\n")
          local msg = not_found("/t.c", "    return 0;")
          assert.matches("line 3", msg, 1, true)
          assert.matches("\treturn 0;", msg, 1, true)
          assert.matches("tab", msg:lower(), 1, true)
        end)

        it("CRLF line endings", function()
          put("/w.txt", "first = 1\r\nsecond = 2\r\n")
          local msg = not_found("/w.txt", "first = 1\nsecond = 2")
          assert.matches("line 1", msg, 1, true)
          assert.matches("crlf", msg:lower(), 1, true)
        end)

        it("trailing spaces", function()
          put("/s.txt", "header\nvalue = 42   \nfooter\n")
          local msg = not_found("/s.txt", "value = 42\nfooter")
          assert.matches("line 2", msg, 1, true)
          assert.matches("trailing", msg:lower(), 1, true)
        end)

        it("a different word still shows the closest line", function()
          put("/g.lua", "local alpha = 1\nlocal betta = compute(alpha)\nreturn betta\n")
          local msg = not_found("/g.lua", "local beta = compute(alpha)")
          assert.matches("line 2", msg, 1, true)
          assert.matches("local betta = compute(alpha)", msg, 1, true)
        end)

        it("an empty file says so without crashing", function()
          put("/e.txt", "")
          not_found("/e.txt", "anything")
        end)
      end)
    end)

    -- ls -------------------------------------------------------------------------------------
    describe("ls", function()
      it("lists direct children, directories first, then by name", function()
        put("/dir/file2.txt", "22")
        put("/dir/file1.txt", "1")
        put("/dir/subdir/nested.txt", "n")
        put("/dir/B.txt", "b")
        put("/dir/a_dir/x.txt", "x")
        local l = b:ls("/dir")
        assert.same({ "a_dir", "subdir", "B.txt", "file1.txt", "file2.txt" }, names(l))
        assert.same({ "/dir/a_dir", "/dir/subdir", "/dir/B.txt", "/dir/file1.txt", "/dir/file2.txt" }, paths(l))
      end)

      it("gives name, path, is_dir, size and modified_at (ISO-8601 UTC)", function()
        put("/dir/file.txt", "12345")
        put("/dir/sub/x.txt", "x")
        local l = b:ls("/dir")
        assert.equal(2, #l)
        local d, f = l[1], l[2]
        assert.equal("sub", d.name)
        assert.is_true(d.is_dir)
        assert.is_nil(d.size)
        assert.equal("file.txt", f.name)
        assert.equal("/dir/file.txt", f.path)
        assert.is_false(f.is_dir)
        assert.equal(5, f.size)
        assert.is_true(math.type(f.size) == "integer")
        assert.is_true(iso_ok(f.modified_at), tostring(f.modified_at))
        local year = tonumber(f.modified_at:sub(1, 4))
        assert.is_true(year >= tonumber(os.date("!%Y")) - 1)
      end)

      it("reports byte sizes", function()
        put("/u.txt", "世界") -- 6 bytes
        put("/crlf.txt", "a\r\nb\r\n")
        put("/bin", "\0\1\2")
        local by = {}
        for _, e in ipairs(b:ls("/")) do by[e.name] = e.size end
        assert.same({ ["u.txt"] = 6, ["crlf.txt"] = 6, bin = 3 }, by)
      end)

      it("lists the root under every spelling", function()
        put("/a.py", "x = 1\n")
        put("/pkg/b.py", "y = 2\n")
        for _, root in ipairs({ "/", "", ".", "./", "/." }) do
          assert.same({ "pkg", "a.py" }, names(unmounted(b:ls(root))), "spelling '" .. root .. "'")
        end
        assert.same({ "/pkg", "/a.py" }, paths(unmounted(b:ls("."))))
      end)

      it("lists hidden entries too", function()
        put("/.env", "A=1\n")
        put("/.git/config", "[core]\n")
        put("/visible.txt", "v")
        assert.same({ ".git", ".env", "visible.txt" }, names(unmounted(b:ls("/"))))
      end)

      it("accepts a trailing slash and relative directory names", function()
        put("/src/main.c", "int main;")
        assert.same({ "main.c" }, names(b:ls("/src/")))
        assert.same({ "main.c" }, names(b:ls("src")))
        assert.same({ "/src/main.c" }, paths(b:ls("src/")))
      end)

      it("lists a file path as that file", function()
        put("/dir/only.txt", "abc")
        local l = b:ls("/dir/only.txt")
        assert.equal(1, #l)
        assert.equal("only.txt", l[1].name)
        assert.equal("/dir/only.txt", l[1].path)
        assert.is_false(l[1].is_dir)
        assert.equal(3, l[1].size)
      end)

      it("lists an empty backend as an empty table and fails with ENOENT for a missing path", function()
        assert.same({}, unmounted(b:ls("/")))
        failure("ENOENT", b:ls("/missing"))
        put("/a/x.txt", "x")
        failure("ENOENT", b:ls("/a/missing"))
      end)
    end)

    -- glob -----------------------------------------------------------------------------------
    describe("glob", function()
      local function seed()
        for _, p in ipairs({ "/src/main.py", "/src/utils.py", "/src/test.js", "/lib/helper.py", "/top.py",
          "/src/deep/er/x.py", "/README.md", "/data/a1.txt", "/data/a2.txt", "/data/b1.txt", "/data/ab.txt" }) do
          put(p, "content of " .. p .. "\n")
        end
      end

      it("matches ** at any depth including zero", function()
        seed()
        assert.same({ "/lib/helper.py", "/src/deep/er/x.py", "/src/main.py", "/src/utils.py", "/top.py" },
          sorted(paths(b:glob("**/*.py"))))
        assert.same({ "/src/deep/er/x.py", "/src/main.py", "/src/utils.py" }, sorted(paths(b:glob("src/**/*.py"))))
        assert.equal(11, #b:glob("**"))
        assert.same({ "/src/deep/er/x.py", "/src/main.py", "/src/test.js", "/src/utils.py" },
          sorted(paths(b:glob("src/**"))))
        assert.same({ "/src/deep/er/x.py" }, paths(b:glob("**/er/*.py")))
      end)

      it("matches * within one segment", function()
        seed()
        assert.same({ "/top.py" }, paths(b:glob("*.py")))
        assert.same({ "/src/main.py", "/src/utils.py" }, sorted(paths(b:glob("src/*.py"))))
        assert.same({ "/lib/helper.py", "/src/main.py", "/src/test.js", "/src/utils.py" },
          sorted(paths(b:glob("*/*.{py,js}"))))
        assert.same({ "/README.md", "/top.py" }, sorted(paths(b:glob("*.*"))))
      end)

      it("matches ?, [...], [!...], [^...] and {a,b}", function()
        seed()
        assert.same({ "/data/a1.txt", "/data/a2.txt", "/data/ab.txt" }, sorted(paths(b:glob("data/a?.txt"))))
        assert.same({ "/data/a1.txt", "/data/a2.txt" }, sorted(paths(b:glob("data/a[0-9].txt"))))
        assert.same({ "/data/a1.txt", "/data/b1.txt" }, sorted(paths(b:glob("data/[ab]1.txt"))))
        assert.same({ "/data/a2.txt", "/data/ab.txt" }, sorted(paths(b:glob("data/a[!1].txt"))))
        assert.same({ "/data/a2.txt", "/data/ab.txt" }, sorted(paths(b:glob("data/a[^1].txt"))))
        assert.same({ "/README.md", "/src/test.js" }, sorted(paths(b:glob("**/*.{js,md}"))))
      end)

      it("is relative to path and returns full virtual paths", function()
        seed()
        assert.same({ "/src/main.py", "/src/utils.py" }, sorted(paths(b:glob("*.py", "/src"))))
        assert.same({ "/src/deep/er/x.py", "/src/main.py", "/src/utils.py" }, sorted(paths(b:glob("**/*.py", "src"))))
        assert.same({}, b:glob("*.py", "/lib/none"))
        for _, root in ipairs({ "/", "", ".", "./", "/." }) do
          assert.same({ "/top.py" }, paths(b:glob("*.py", root)), "root spelling '" .. root .. "'")
        end
      end)

      it("returns files only, with the ls fields", function()
        seed()
        local r = b:glob("src/*")
        assert.same({ "/src/main.py", "/src/test.js", "/src/utils.py" }, sorted(paths(r)))
        for _, e in ipairs(r) do
          assert.is_false(e.is_dir)
          assert.equal(#("content of " .. e.path .. "\n"), e.size)
          assert.equal(e.path:match("[^/]+$"), e.name)
          assert.is_true(iso_ok(e.modified_at))
        end
        assert.same({}, b:glob("src"))
      end)

      it("matches names with spaces, Cyrillic and emoji", function()
        put("/docs/my notes.md", "1")
        put("/docs/файл.md", "2")
        put("/docs/🚀 launch.md", "3")
        assert.same({ "/docs/my notes.md", "/docs/файл.md", "/docs/🚀 launch.md" }, sorted(paths(b:glob("**/*.md"))))
        assert.same({ "/docs/файл.md" }, paths(b:glob("docs/ф*")))
        assert.same({ "/docs/my notes.md" }, paths(b:glob("docs/my *")))
      end)

      it("orders the newest first", function()
        put("/a.py", "old")
        put("/b.py", "old")
        sleep(1.1)
        put("/b.py", "rewritten") -- a rewrite makes it the newest: before /a.py despite the name
        assert.same({ "/b.py", "/a.py" }, paths(b:glob("**/*.py")))
        assert.is_true(b:ls("/b.py")[1].modified_at >= b:ls("/a.py")[1].modified_at)
      end)

      it("returns an empty table when nothing matches", function()
        assert.same({}, b:glob("**/*.py"))
        put("/x.txt", "x")
        assert.same({}, b:glob("*.nothing"))
      end)
    end)

    -- grep -----------------------------------------------------------------------------------
    describe("grep", function()
      local function seed()
        put("/src/app.py", "import os\n# TODO_123 fix this\nx = 1\n# TODO_45 not three digits\n")
        put("/src/lib/util.py", "def f():\n    pass  # TODO_999\n")
        put("/notes.md", "todo_777 lower case\nTODO_001: first\n")
        put("/src/app.js", "// TODO_555 in js\n")
      end

      it("finds PCRE matches, sorted by path then line", function()
        seed()
        local r = b:grep("TODO_\\d{3}")
        assert.same({
          { path = "/notes.md", line_number = 2, line = "TODO_001: first" },
          { path = "/src/app.js", line_number = 1, line = "// TODO_555 in js" },
          { path = "/src/app.py", line_number = 2, line = "# TODO_123 fix this" },
          { path = "/src/lib/util.py", line_number = 2, line = "    pass  # TODO_999" },
        }, r)
      end)

      it("supports classes, alternation, anchors, groups and quantifiers", function()
        put("/r.txt", "alpha 12\nbeta 345\ngamma\n  delta\nepsilon epsilon\nfoo.bar\nfooxbar\n")
        local function lines(pat)
          local out = {}
          for i, m in ipairs(b:grep(pat)) do out[i] = m.line_number end
          return out
        end
        assert.same({ 1, 2 }, lines("[a-z]+ \\d+$"))
        assert.same({ 2 }, lines("\\d{3,}"))
        assert.same({ 1, 3 }, lines("^(alpha|gamma)"))
        assert.same({ 4 }, lines("^\\s+\\w+"))
        assert.same({ 6 }, lines("foo\\.bar"))
        assert.same({ 6, 7 }, lines("foo.bar"))
        assert.same({ 2 }, lines("^b[^a-d]ta"))
        assert.same({ 3 }, lines("^g(?:am){1}ma$"))
        assert.same({ 1, 2, 4, 5 }, lines("\\b[a-e][a-z]*a\\b|epsilon"))
      end)

      it_if("pcre", "lookaround and backreferences", "supports full PCRE (lookaround, backreferences)", function()
        put("/p.txt", "foobar\nfoobaz\nabcabc\nxyzxyw\n")
        local function lines(pat)
          local out = {}
          for i, m in ipairs(b:grep(pat)) do out[i] = m.line_number end
          return out
        end
        assert.same({ 1 }, lines("foo(?=bar)"))
        assert.same({ 2 }, lines("foo(?!bar)"))
        assert.same({ 3 }, lines("^(abc)\\1$"))
        assert.same({ 2 }, lines("(?<=foo)baz"))
      end)

      it("searches for a fixed string with fixed = true", function()
        put("/f.txt", "a.b(c\naxb(c\n[x]*\n")
        assert.same({ { path = "/f.txt", line_number = 1, line = "a.b(c" } }, b:grep("a.b(c", { fixed = true }))
        assert.same({ { path = "/f.txt", line_number = 3, line = "[x]*" } }, b:grep("[x]*", { fixed = true }))
      end)

      it("fails with INVALID for a bad regex, giving the offset", function()
        put("/f.txt", "x\n")
        local msg = failure("INVALID", b:grep("foo(bar"))
        assert.matches("offset %d+", msg)
        failure("INVALID", b:grep("[unclosed"))
        failure("INVALID", b:grep("a{2,1}"))
        failure("INVALID", b:grep("*oops"))
      end)

      it("ignores case when asked, for regexes and fixed strings", function()
        seed()
        local r = b:grep("todo_\\d{3}", { ignore_case = true })
        assert.equal(5, #r)
        assert.same({ "/notes.md", "/notes.md" }, { r[1].path, r[2].path })
        assert.equal(2, #b:grep("TODO_", { fixed = true, ignore_case = true, path = "/notes.md" }))
        assert.equal(1, #b:grep("TODO_", { fixed = true, path = "/notes.md" }))
      end)

      it("filters by glob: a basename pattern at any depth, a pattern with / from the search root", function()
        seed()
        put("/other/src/x.py", "TODO_321\n")
        local r = b:grep("TODO_\\d{3}", { glob = "*.py" })
        assert.same({ "/other/src/x.py", "/src/app.py", "/src/lib/util.py" }, paths(r))
        r = b:grep("TODO_\\d{3}", { glob = "src/*.py" })
        assert.same({ "/src/app.py" }, paths(r))
        r = b:grep("TODO_\\d{3}", { glob = "lib/*.py", path = "/src" })
        assert.same({ "/src/lib/util.py" }, paths(r))
        r = b:grep("TODO_\\d{3}", { glob = "**/*.{js,md}" })
        assert.same({ "/notes.md", "/src/app.js" }, paths(r))
      end)

      it("skips hidden files by default and searches them with ignore_hidden = false", function()
        put("/.env", "SECRET=TODO_111\n")
        put("/.config/x.txt", "TODO_222\n")
        put("/a/.hidden.py", "TODO_333\n")
        put("/visible.txt", "TODO_444\n")
        assert.same({ "/visible.txt" }, paths(b:grep("TODO_\\d{3}")))
        assert.same({ "/.config/x.txt", "/.env", "/a/.hidden.py", "/visible.txt" },
          paths(b:grep("TODO_\\d{3}", { ignore_hidden = false })))
      end)

      it("searches a named hidden file", function()
        put("/.env", "API_KEY=abc\n")
        assert.same({ { path = "/.env", line_number = 1, line = "API_KEY=abc" } },
          b:grep("API_KEY", { path = "/.env" }))
      end)

      it("always skips VCS, dependency, cache and build directories", function()
        local skipped = { ".git", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache",
          ".pytest_cache", ".ruff_cache", ".eggs", "build", "dist" }
        for _, d in ipairs(skipped) do put("/" .. d .. "/f.txt", "NEEDLE\n") end
        put("/pkg/node_modules/dep/index.js", "NEEDLE\n")
        put("/pkg/build/out.txt", "NEEDLE\n")
        put("/pkg/src/main.txt", "NEEDLE\n")
        put("/builder/ok.txt", "NEEDLE\n")
        assert.same({ "/builder/ok.txt", "/pkg/src/main.txt" }, paths(b:grep("NEEDLE")))
        assert.same({ "/builder/ok.txt", "/pkg/src/main.txt" }, paths(b:grep("NEEDLE", { ignore_hidden = false })))
      end)

      it("skips a listed directory even when a file inside has the same name, but not such a file", function()
        put("/pkg/build/build", "NEEDLE\n")
        put("/node_modules/node_modules", "NEEDLE\n")
        put("/.git/.git", "NEEDLE\n")
        put("/src/dist", "NEEDLE\n") -- a file named like a skipped directory is searched
        put("/src/build", "NEEDLE\n")
        assert.same({ "/src/build", "/src/dist" }, paths(b:grep("NEEDLE")))
        assert.same({ "/src/build", "/src/dist" }, paths(b:grep("NEEDLE", { ignore_hidden = false })))
      end)

      it("skips binary files", function()
        put("/img.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
        put("/latin1.txt", "IHDR caf\xe9\n")
        put("/text.txt", "IHDR in text\n")
        assert.same({ "/text.txt" }, paths(b:grep("IHDR")))
      end)

      it("restricts the search to path (a directory or a file)", function()
        seed()
        assert.same({ "/src/app.js", "/src/app.py", "/src/lib/util.py" },
          paths(b:grep("TODO_\\d{3}", { path = "/src" })))
        assert.same({ "/src/lib/util.py" }, paths(b:grep("TODO_\\d{3}", { path = "src/lib/" })))
        local r = b:grep("TODO", { path = "/src/app.py" })
        assert.same({ 2, 4 }, { r[1].line_number, r[2].line_number })
        for _, root in ipairs({ "/", "", ".", "./", "/." }) do
          assert.equal(4, #b:grep("TODO_\\d{3}", { path = root }), "root spelling '" .. root .. "'")
        end
        failure("ENOENT", b:grep("x", { path = "/missing" }))
      end)

      it("caps the number of results with max, keeping the first in order", function()
        seed()
        local all = b:grep("TODO")
        local two = b:grep("TODO", { max = 2 })
        assert.same({ all[1], all[2] }, two)
        assert.equal(#all, #b:grep("TODO", { max = 1000 }))
      end)

      it("keeps colons, tabs and UTF-8 in the line, without the newline", function()
        put("/c.txt", "key: value: more\n\tтабуляция 🚀: x\r\n")
        local r = b:grep(":")
        assert.equal("key: value: more", r[1].line)
        assert.equal(2, r[2].line_number)
        assert.equal("\tтабуляция 🚀: x", r[2].line) -- without the CRLF's \r
      end)

      it("counts lines in CRLF files and files without a final newline", function()
        put("/w.txt", "a\r\nb NEEDLE\r\nc\r\n")
        put("/n.txt", "a\nb\nNEEDLE")
        local r = b:grep("NEEDLE")
        assert.same({ "/n.txt", "/w.txt" }, paths(r))
        assert.same({ 3, 2 }, { r[1].line_number, r[2].line_number })
        assert.equal("NEEDLE", r[1].line)
      end)

      it("returns an empty table when nothing matches", function()
        assert.same({}, b:grep("anything"))
        put("/x.txt", "x\n")
        assert.same({}, b:grep("nothing here"))
      end)
    end)

    -- file names -------------------------------------------------------------------------------
    describe("file names with spaces, Cyrillic and emoji", function()
      local names_to_try = { "file with spaces.txt", "file-name_test.123.txt", "файл.txt", "file_🚀.txt",
        "папка с пробелами/документ 📄.md", "日本語/ファイル.txt", "a'quote\"double.txt", "semi;colon&amp$x.txt" }

      it("write, read, edit, exists, ls, glob and grep them", function()
        for _, name in ipairs(names_to_try) do
          local path = "/" .. name
          assert.same({ path = path }, b:write(name, "hello " .. name .. "\n"))
          assert.is_true(b:exists(path))
          assert.equal("     1\thello " .. name, b:read(path))
          assert.same({ path = path, occurrences = 1 }, b:edit(path, "hello", "bye"))
          assert.equal("bye " .. name .. "\n", bytes(path))
          local g = b:grep("bye", { path = path })
          assert.same({ { path = path, line_number = 1, line = "bye " .. name } }, g)
          local dir, base = path:match("^(.*)/([^/]+)$")
          if dir == "" then dir = "/" end
          local found = false
          for _, e in ipairs(b:ls(dir)) do found = found or (e.name == base and e.path == path) end
          assert.is_true(found, "ls " .. dir .. " lists " .. base)
        end
        local all = paths(b:glob("**"))
        assert.equal(#names_to_try, #all)
      end)
    end)

    -- argument checking ------------------------------------------------------------------------
    describe("argument checking", function()
      local function raises(pattern, fn)
        local ok, err = pcall(fn)
        assert.is_false(ok, "expected an error")
        if pattern then assert.matches(pattern, tostring(err), 1, true) end
      end

      it("raises for wrong argument types, naming the argument and method", function()
        raises("bad argument #1 to 'read' (string expected, got nil)", function() return b:read(nil) end)
        raises("bad argument #1 to 'exists'", function() return b:exists({}) end)
        raises("bad argument #1 to 'ls'", function() return b:ls(false) end)
        raises("bad argument #1 to 'read_bytes'", function() return b:read_bytes() end)
        raises("bad argument #2 to 'write'", function() return b:write("/a.txt") end)
        raises("bad argument #2 to 'write'", function() return b:write("/a.txt", {}) end)
        raises("bad argument #2 to 'edit'", function() return b:edit("/a.txt", nil, "x") end)
        raises("bad argument #3 to 'edit'", function() return b:edit("/a.txt", "x", {}) end)
        raises("bad argument #2 to 'read'", function() return b:read("/a.txt", {}) end)
        raises("bad argument #3 to 'read'", function() return b:read("/a.txt", 0, "many") end)
        raises("bad argument #1 to 'glob'", function() return b:glob(nil) end)
        raises("bad argument #2 to 'glob'", function() return b:glob("*", {}) end)
        raises("bad argument #1 to 'grep'", function() return b:grep(nil) end)
        raises("bad argument #2 to 'grep'", function() return b:grep("x", "not a table") end)
        assert.is_false(b:exists("/a.txt"))
      end)

      it("raises for unknown or mistyped grep options", function()
        raises("bogus", function() return b:grep("x", { bogus = true }) end)
        raises("max", function() return b:grep("x", { max = "lots" }) end)
        raises("path", function() return b:grep("x", { path = 42 }) end)
        raises("glob", function() return b:grep("x", { glob = {} }) end)
      end)
    end)

    -- hostile paths -----------------------------------------------------------------------------
    describe("hostile paths", function()
      local escapes = { "../escape.txt", "/../escape.txt", "a/../../escape.txt", "/a/b/../../../escape.txt", ".." }

      it("refuses .. escapes in every operation", function()
        put("/a/b/inside.txt", "x")
        for _, p in ipairs(escapes) do
          local refused = { "INVALID", "EACCES" }
          failure(refused, b:write(p, "pwned"))
          failure(refused, b:read(p))
          failure(refused, b:read_bytes(p))
          failure(refused, b:edit(p, "a", "b"))
          failure(refused, b:ls(p))
          assert.is_false(b:exists(p))
          local g, _, gc = b:glob("*", p)
          assert.is_true(g == nil and (gc == "INVALID" or gc == "EACCES") or (g ~= nil and #g == 0), p)
          failure(refused, b:grep("x", { path = p }))
        end
        assert.same({ "/a/b/inside.txt" }, paths(b:glob("**")))
      end)

      it("refuses a NUL byte in a path with INVALID", function()
        put("/ok.txt", "x")
        local p = "/ok.txt\0/../../etc/passwd"
        failure("INVALID", b:write("/new\0.txt", "x"))
        failure("INVALID", b:read(p))
        failure("INVALID", b:read_bytes(p))
        failure("INVALID", b:edit(p, "x", "y"))
        failure("INVALID", b:ls(p))
        failure("INVALID", b:glob("*", "/\0"))
        failure("INVALID", b:grep("x", { path = p }))
        assert.is_false(b:exists(p))
        assert.same({ "/ok.txt" }, paths(b:glob("**")))
        assert.equal("x", bytes("/ok.txt"))
      end)

      it("fails cleanly on a 4,096-byte name and a very long path", function()
        local long = "/" .. string.rep("n", 4096)
        local deep = "/" .. string.rep("d/", 2100) .. "f.txt"
        for _, p in ipairs({ long, deep }) do
          failure(nil, b:write(p, "x"))
          failure(nil, b:read(p))
          failure(nil, b:read_bytes(p))
          failure(nil, b:edit(p, "x", "y"))
          failure(nil, b:ls(p))
          assert.is_false(b:exists(p))
        end
        assert.same({}, unmounted(b:ls("/")))
      end)

      it("treats a host path like /etc/passwd as a virtual path", function()
        failure("ENOENT", b:read("/etc/passwd"))
        failure("ENOENT", b:read_bytes("/etc/passwd"))
        assert.is_false(b:exists("/etc/passwd"))
        put("/etc/passwd", "virtual\n")
        assert.equal("virtual\n", bytes("/etc/passwd"))
      end)
    end)

    -- real directories only --------------------------------------------------------------------
    describe("on a real directory", function()
      local function sh(cmd)
        local ok = os.execute(cmd)
        assert.is_true(ok == true or ok == 0, cmd)
      end
      local outside
      before_each(function()
        if caps.root then
          outside = os.tmpname()
          os.remove(outside)
          sh("mkdir -p " .. sh_quote(outside) .. " && printf 'SECRET_TOKEN\\n' > "
            .. sh_quote(outside .. "/secret.txt"))
        end
      end)
      after_each(function()
        if outside then os.execute("rm -rf " .. sh_quote(outside)) end
        outside = nil
      end)

      local function unchanged_outside()
        local f = assert(io.open(outside .. "/secret.txt", "rb"))
        local s = f:read("a")
        f:close()
        assert.equal("SECRET_TOKEN\n", s)
        local p = io.popen("ls -A " .. sh_quote(outside))
        local listing = p:read("a")
        p:close()
        assert.equal("secret.txt\n", listing)
      end

      it_if("root", "symlinks", "refuses a symlink to an outside file, existing or dangling", function()
        local root = caps.root
        sh("ln -s " .. sh_quote(outside .. "/secret.txt") .. " " .. sh_quote(root .. "/link.txt"))
        sh("ln -s " .. sh_quote(outside .. "/new.txt") .. " " .. sh_quote(root .. "/dangling.txt"))
        for _, p in ipairs({ "/link.txt", "/dangling.txt" }) do
          failure("EACCES", b:read(p))
          failure("EACCES", b:read_bytes(p))
          failure("EACCES", b:write(p, "pwned"))
          failure("EACCES", b:edit(p, "SECRET", "PWNED"))
          assert.is_false(b:exists(p))
        end
        unchanged_outside()
      end)

      it_if("root", "symlinks", "refuses a symlinked directory in the middle of a path", function()
        local root = caps.root
        sh("ln -s " .. sh_quote(outside) .. " " .. sh_quote(root .. "/out"))
        failure("EACCES", b:read("/out/secret.txt"))
        failure("EACCES", b:read_bytes("out/secret.txt"))
        failure("EACCES", b:write("/out/new.txt", "pwned"))
        failure("EACCES", b:write("/out/sub/new.txt", "pwned"))
        failure("EACCES", b:edit("/out/secret.txt", "SECRET", "PWNED"))
        failure("EACCES", b:ls("/out"))
        assert.is_false(b:exists("/out/secret.txt"))
        local g = b:glob("**", "/out")
        assert.is_true(g == nil or #g == 0)
        local r = b:grep("SECRET_TOKEN", { path = "/out" })
        assert.is_true(r == nil or #r == 0)
        unchanged_outside()
      end)

      it_if("root", "symlinks", "never lists, globs or greps through a link that leaves the root", function()
        local root = caps.root
        put("/in.txt", "SECRET_TOKEN inside\n")
        sh("ln -s " .. sh_quote(outside) .. " " .. sh_quote(root .. "/outdir"))
        sh("ln -s " .. sh_quote(outside .. "/secret.txt") .. " " .. sh_quote(root .. "/outfile.txt"))
        assert.same({ "/in.txt" }, paths(b:grep("SECRET_TOKEN")))
        assert.same({ "/in.txt" }, paths(b:grep("SECRET_TOKEN", { ignore_hidden = false })))
        for _, e in ipairs(b:glob("**")) do
          assert.is_nil(e.path:find("^/out"), e.path)
        end
      end)

      it_if("root", "symlinks", "follows a symlink that stays inside the root", function()
        local root = caps.root
        put("/real/data.txt", "inside\n")
        sh("ln -s real " .. sh_quote(root .. "/alias"))
        assert.equal("inside\n", bytes("/alias/data.txt"))
        assert.is_true(b:exists("/alias/data.txt"))
      end)

      it_if("root", "absolute host paths", "accepts an absolute host path inside the root", function()
        local root = caps.root
        local r = b:write(root .. "/abs/file.txt", "abs\n")
        assert.same({ path = "/abs/file.txt" }, r)
        assert.equal("abs\n", bytes("/abs/file.txt"))
        assert.equal("abs\n", bytes(root .. "/abs/file.txt"))
        assert.equal("     1\tabs", b:read(root .. "/abs/file.txt"))
      end)

      it_if("root", "absolute host paths", "refuses an absolute host path outside the root", function()
        local root = caps.root
        local host = outside .. "/secret.txt"
        -- not under the root: a virtual path below the root (missing) or refused, never the host file
        failure({ "EACCES", "ENOENT" }, b:read(host))
        failure({ "EACCES", "ENOENT" }, b:read_bytes(host))
        b:write(host, "PWNED")
        b:edit(host, "SECRET", "PWNED")
        -- the root's own parent, spelled as an absolute host path
        local sibling = root .. "/../" .. outside:match("[^/]+$") .. "/secret.txt"
        failure({ "EACCES", "INVALID" }, b:read(sibling))
        failure({ "EACCES", "INVALID" }, b:write(sibling, "PWNED"))
        failure({ "EACCES", "INVALID" }, b:write(root .. "/../escape.txt", "x"))
        unchanged_outside()
      end)

      it_if("root", "files made outside the backend", "sees files made on disk and writes real files", function()
        local root = caps.root
        sh("mkdir -p " .. sh_quote(root .. "/made") .. " && printf 'on disk\\n' > " .. sh_quote(root .. "/made/x.txt"))
        assert.equal("     1\ton disk", b:read("/made/x.txt"))
        put("/w/y.txt", "via backend\r\n")
        local f = assert(io.open(root .. "/w/y.txt", "rb"))
        assert.equal("via backend\r\n", f:read("a"))
        f:close()
      end)

      it_if("root", "file modes", "keeps an existing file's mode across write and edit", function()
        local root = caps.root
        put("/run.sh", "#!/bin/sh\necho hi\n")
        sh("chmod 0751 " .. sh_quote(root .. "/run.sh"))
        put("/run.sh", "#!/bin/sh\necho hello\n")
        assert(b:edit("/run.sh", "hello", "bye"))
        local p = io.popen("stat -c %a " .. sh_quote(root .. "/run.sh"))
        local mode = p:read("l")
        p:close()
        assert.equal("751", mode)
        assert.equal("#!/bin/sh\necho bye\n", bytes("/run.sh"))
      end)
    end)
  end)
end
