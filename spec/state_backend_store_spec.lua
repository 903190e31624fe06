-- moonbox.state_backend beyond the shared protocol suite: loading, files() export, lifetime, scale.
local moonbox = require "moonbox"
local cjson = require "cjson"

local function new(files) return moonbox.state_backend { files = files } end

describe("state_backend", function()
  describe("construction", function()
    it("loads plain strings under normalized paths", function()
      local b = new { ["/notes.md"] = "hello\n", ["src//a.c"] = "int a;\n", ["./x/./y.txt"] = "y" }
      assert.equal("hello\n", b:read_bytes("/notes.md"))
      assert.equal("int a;\n", b:read_bytes("/src/a.c"))
      assert.equal("y", b:read_bytes("/x/y.txt"))
      assert.same({ "src", "x", "notes.md" }, (function()
        local n = {}
        for i, e in ipairs(b:ls("/")) do n[i] = e.name end
        return n
      end)())
    end)

    it("loads records: text, base64, the reference's list of lines, and times", function()
      local b = new {
        ["/t.txt"] = { content = "text\n", modified_at = "2024-01-02T03:04:05.000006Z" },
        ["/bin"] = { content = "AAH/", encoding = "base64" },
        ["/lines.txt"] = { content = { "a", "b", "" } },
        ["/split.b64"] = { content = { "aGVs", "bG8=" }, encoding = "base64" },
      }
      assert.equal("\0\1\255", b:read_bytes("/bin"))
      assert.equal("a\nb\n", b:read_bytes("/lines.txt"))
      assert.equal("hello", b:read_bytes("/split.b64"))
      assert.equal("2024-01-02T03:04:05.000006Z", b:ls("/t.txt")[1].modified_at)
    end)

    it("works with no options and with an empty table", function()
      assert.same({}, moonbox.state_backend():ls("/"))
      assert.same({}, moonbox.state_backend {}:ls("/"))
    end)

    it("raises on misuse: unknown options, bad paths, bad records, clashes", function()
      assert.has_error(function() moonbox.state_backend { file = {} } end)
      assert.has_error(function() moonbox.state_backend { files = "x" } end)
      assert.has_error(function() new { ["../x"] = "x" } end)
      assert.has_error(function() new { [1] = "x" } end)
      assert.has_error(function() new { ["/a"] = 42 } end)
      assert.has_error(function() new { ["/a"] = { content = "***", encoding = "base64" } } end)
      assert.has_error(function() new { ["/a"] = { content = "x", encoding = "latin1" } } end)
      assert.has_error(function() new { ["/a"] = { content = "x", modified_at = "yesterday" } } end)
      assert.has_error(function() new { ["/a"] = "x", ["a"] = "y" } end, nil)
      assert.has_error(function() new { ["/a"] = "x", ["/a/b"] = "y" } end)
    end)
  end)

  describe("ls", function()
    it("dates an implied directory by the newest file below it", function()
      local b = new {
        ["/d/old.txt"] = { content = "1", modified_at = "2020-01-01T00:00:00.000000Z" },
        ["/d/sub/new.txt"] = { content = "2", modified_at = "2024-05-06T07:08:09.000010Z" },
        ["/e/x.txt"] = { content = "3", modified_at = "2021-01-01T00:00:00.000000Z" },
      }
      local l = b:ls("/")
      assert.same({ "d", "e" }, { l[1].name, l[2].name })
      assert.equal("2024-05-06T07:08:09.000010Z", l[1].modified_at)
      assert.equal("2021-01-01T00:00:00.000000Z", l[2].modified_at)
      assert.is_nil(l[1].size)
    end)
  end)

  describe("files()", function()
    it("exports a JSON-serializable table that loads back exactly", function()
      local all = {}
      for i = 0, 255 do all[#all + 1] = string.char(i) end
      local b = new {}
      b:write("/text.md", "héllo 世界 🌍\r\nline 2")
      b:write("/png.bin", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR")
      b:write("/all.bin", table.concat(all))
      b:write("/dir/empty.txt", "")
      local doc = b:files()
      assert.equal("héllo 世界 🌍\r\nline 2", doc["/text.md"].content)
      assert.is_nil(doc["/text.md"].encoding)
      assert.equal("base64", doc["/png.bin"].encoding)
      local json = cjson.encode(doc)
      local again = new(cjson.decode(json))
      for _, p in ipairs { "/text.md", "/png.bin", "/all.bin", "/dir/empty.txt" } do
        assert.equal(b:read_bytes(p), again:read_bytes(p))
        assert.same(b:ls(p), again:ls(p))
      end
      assert.same(b:glob("**"), again:glob("**"))
      assert.same(doc, again:files())
    end)

    it("keeps created_at across rewrites and moves modified_at", function()
      local b = new {}
      b:write("/f", "1")
      local first = b:files()["/f"]
      b:write("/f", "2")
      local second = b:files()["/f"]
      assert.equal(first.created_at, second.created_at)
      assert.is_true(second.modified_at > first.modified_at)
    end)
  end)

  describe("lifetime", function()
    it("raises after close and closes idempotently", function()
      local b = new { ["/a"] = "a" }
      assert.matches("1 files", tostring(b))
      b:close()
      b:close()
      assert.matches("closed", tostring(b))
      assert.has_error(function() b:read("/a") end, "attempt to use a closed Backend")
    end)

    it("closes at the end of a to-be-closed scope", function()
      local ref
      do
        local b <close> = new { ["/a"] = "a" }
        ref = b
      end
      assert.has_error(function() ref:exists("/a") end, "attempt to use a closed Backend")
    end)
  end)

  describe("grep on a worker thread", function()
    local function big_store()
      local b = new {}
      for i = 1, 120 do -- about 1.3 MB: over the worker threshold
        b:write(("/f%03d.txt"):format(i), ("filler line\n"):rep(900) .. "NEEDLE " .. i .. "\n")
      end
      return b
    end

    it("searches a snapshot while other tasks rewrite the files", function()
      local b = big_store()
      local g = moonbox.spawn(function() return b:grep("NEEDLE \\d+", { max = 1000 }) end)
      local w = moonbox.spawn(function()
        for i = 1, 120 do b:write(("/f%03d.txt"):format(i), "replaced\n") end
      end)
      local r = g:join()
      w:join()
      assert.equal(120, #r)
      assert.same({ path = "/f001.txt", line_number = 901, line = "NEEDLE 1" }, r[1])
      assert.same({ path = "/f120.txt", line_number = 901, line = "NEEDLE 120" }, r[120])
      assert.same({}, b:grep("NEEDLE"))
      assert.equal("replaced\n", b:read_bytes("/f007.txt"))
    end)

    it("keeps the store alive when it is closed during the search", function()
      local b = big_store()
      local g = moonbox.spawn(function() return b:grep("NEEDLE 7\\b") end)
      local c = moonbox.spawn(function() b:close() end)
      local r = g:join()
      c:join()
      assert.same({ { path = "/f007.txt", line_number = 901, line = "NEEDLE 7" } }, r)
      assert.has_error(function() b:ls("/") end, "attempt to use a closed Backend")
    end)

    it("drops the results of a cancelled search and keeps working", function()
      local b = big_store()
      local g = moonbox.spawn(function() return b:grep("NEEDLE") end)
      moonbox.spawn(function() g:cancel() end):join()
      pcall(g.join, g)
      collectgarbage()
      b:write("/f001.txt", "NEEDLE again\n")
      assert.equal(120, #b:grep("NEEDLE"))
    end)

    it("reports a bad pattern and a costly one from the worker path", function()
      local b = big_store()
      local t = moonbox.spawn(function()
        local _, _, code = b:grep("(unclosed")
        b:write("/evil.txt", ("a"):rep(40) .. "b\n")
        local _, msg2, code2 = b:grep("(a+)+$")
        return code, msg2, code2
      end)
      local code, msg2, code2 = t:join()
      assert.equal("INVALID", code)
      assert.equal("INVALID", code2)
      assert.matches("too costly", msg2, 1, true)
    end)
  end)

  describe("at scale", function()
    it("keeps ls, glob and grep fast over thousands of files", function()
      local b = new {}
      local t0 = os.clock()
      for d = 1, 40 do
        for f = 1, 100 do
          b:write(("/pkg%02d/sub/mod%03d.py"):format(d, f), ("x = %d\n# TODO_%03d\n"):format(f, f))
        end
        b:write(("/pkg%02d/README.md"):format(d), "readme\n")
      end
      assert.equal(42, #b:ls("/pkg07") + 40) -- sub + README.md
      assert.equal(4000, #b:glob("**/*.py"))
      assert.equal(100, #b:glob("pkg03/**/*.py"))
      assert.equal(40, #b:grep("TODO_007"))
      assert.equal(4000, #b:grep("TODO_\\d{3}", { glob = "*.py" }))
      -- interleaved writes and listings stay cheap (no full re-sort per write)
      for i = 1, 500 do
        b:write(("/new/f%04d.txt"):format(i), "n")
        assert.equal(i, #b:ls("/new"))
      end
      assert.is_true(os.clock() - t0 < 5, "took " .. (os.clock() - t0))
    end)
  end)
end)
