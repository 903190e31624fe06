-- moonbox.composite_backend: routing by prefix, mounts, merged listings and searches (issue 4
-- item 5), with the reference's composite cases (§9.1, §9.2, §9.6, §9.13).
local moonbox = require "moonbox"
local lua_backend = require "spec.support.lua_backend"
local tmpdir = require "spec.support.tmpdir"

local function state(files) return moonbox.state_backend{ files = files } end

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

local function at(iso) return { content = "x = 1\n", modified_at = iso } end

local ROOTS = { "/", "", ".", "./", "/." }

describe("composite_backend", function()
  for _, strip in ipairs({ true, false }) do
    describe(strip and "(mount, the default)" or "(pass-through, strip_prefix = false)", function()
      local default, special, b
      before_each(function()
        default, special = state(), state()
        b = moonbox.composite_backend{ default = default, routes = { ["/special/"] = special }, strip_prefix = strip }
      end)

      -- where a file written to /special/<rest> lives inside the route's backend
      local function inside(rest) return strip and rest or ("/special" .. rest) end

      -- §9.1
      it("routes by prefix and lists the mount at the root", function()
        assert.same({ path = "/data.txt" }, b:write("/data.txt", "default data\n"))
        assert.same({ path = "/special/cache.txt" }, b:write("/special/cache.txt", "cached\n"))
        assert.is_true(default:exists("/data.txt"))
        assert.is_false(default:exists("/special/cache.txt"))
        assert.is_true(special:exists(inside("/cache.txt")))
        assert.is_true(b:exists("/special/cache.txt"))
        assert.is_true(b:exists("/data.txt"))
        assert.is_false(b:exists("/special/missing.txt"))
        assert.is_false(b:exists("/special/../etc/passwd"))
        assert.same({ "special", "data.txt" }, names(b:ls("/")))
        assert.same({ "/special", "/data.txt" }, paths(b:ls("/")))
        assert.is_true(b:ls("/")[1].is_dir)
      end)

      it("reads, edits and reads bytes on the routed backend", function()
        assert(b:write("/special/t.txt", "hello world\n"))
        assert.equal("     1\thello world", b:read("/special/t.txt"))
        assert.same({ path = "/special/t.txt", occurrences = 1 }, b:edit("/special/t.txt", "world", "moon"))
        assert.equal("hello moon\n", b:read_bytes("/special/t.txt"))
        assert.equal("hello moon\n", special:read_bytes(inside("/t.txt")))
      end)

      it("routes edge-case file names through the default and the route", function()
        for _, name in ipairs({ "file with spaces.txt", "file-name_test.123.txt", "файл.txt", "file_🚀.txt" }) do
          for _, dir in ipairs({ "", "/special" }) do
            local p = dir .. "/" .. name
            assert.same({ path = p }, b:write(p, "hello\n"))
            assert.equal("     1\thello", b:read(p))
            assert.same({ path = p, occurrences = 1 }, b:edit(p, "hello", "bye"))
            assert.is_true(b:exists(p))
          end
        end
      end)

      -- §9.2
      it("globs and greps from the root across the default and the route", function()
        assert(b:write("/default/file.py", "x = 1\n"))
        assert(b:write("/special/file.py", "y = 2\n"))
        local g = paths(b:glob("**/*.py"))
        table.sort(g)
        assert.same({ "/default/file.py", "/special/file.py" }, g)
        for _, root in ipairs({ "/", "", "." }) do
          local r = b:grep("=", { path = root })
          assert.same({ "/default/file.py", "/special/file.py" }, paths(r))
        end
        assert.same({ "/default/file.py", "/special/file.py" }, paths(b:grep("=")))
        assert.same({ { path = "/special/file.py", line_number = 1, line = "y = 2" } },
          b:grep("=", { path = "/special" }))
      end)

      it("lists the mount on an empty default", function()
        assert.same({ "special" }, names(b:ls("/")))
      end)

      it("shows a directory the default also has once, as the mount", function()
        assert(default:write("/special/shadowed.txt", "old\n"))
        assert(b:write("/readme.txt", "r\n"))
        local l = b:ls("/")
        assert.same({ "special", "readme.txt" }, names(l))
        assert.is_nil(l[1].size)
        -- what the default holds under the mount is hidden by it
        assert.same({}, b:glob("**/shadowed.txt"))
        assert.same({}, b:grep("old"))
      end)

      it("lists the route for /special and /special/, and reads it with or without a slash", function()
        assert(b:write("special/x.txt", "x\n"))
        assert.same({ "x.txt" }, names(b:ls("/special")))
        assert.same({ "x.txt" }, names(b:ls("/special/")))
        assert.same({ "/special/x.txt" }, paths(b:ls("special")))
        assert.equal("x\n", b:read_bytes("special/x.txt"))
      end)

      it("passes a route's failures through, naming the path as written", function()
        local r, msg, code = b:read("/special/missing.txt")
        assert.is_nil(r)
        assert.equal("ENOENT", code)
        assert.matches("/special/missing.txt", msg, 1, true)
        r, msg, code = b:write("/special/../escape.txt", "x")
        assert.is_nil(r)
        assert.is_true(code == "INVALID" or code == "EACCES", msg)
      end)

      -- §9.6
      it("agrees on every root spelling (root path parity)", function()
        assert(b:write("/a.py", "a = 1\n"))
        assert(b:write("/special/b.py", "b = 2\n"))
        for _, root in ipairs(ROOTS) do
          local g = paths(b:glob("**/*.py", root))
          table.sort(g)
          assert.same({ "/a.py", "/special/b.py" }, g, "glob '" .. root .. "'")
          assert.same({ "special", "a.py" }, names(b:ls(root)), "ls '" .. root .. "'")
          assert.same({ "/a.py", "/special/b.py" }, paths(b:grep("=", { path = root })), "grep '" .. root .. "'")
        end
      end)

      -- §9.13
      it("routes a path without a leading slash, and globs, greps and lists inside the route", function()
        assert(b:write("special/data/file.txt", "inside\n"))
        assert.is_true(special:exists(inside("/data/file.txt")))
        assert.same({ "/special/data/file.txt" }, paths(b:glob("**/*.txt", "/special")))
        assert.same({ "/special/data/file.txt" }, paths(b:glob("*.txt", "/special/data")))
        assert.same({ "/special/data/file.txt" }, paths(b:grep("inside", { path = "special/data" })))
        assert.same({ "data" }, names(b:ls("/special")))
        assert.same({ "/special/data/file.txt" }, paths(b:ls("/special/data")))
      end)
    end)
  end

  describe("prefix matching", function()
    it("takes the longest prefix; /foo and /foo/x go to /foo/, /foobar does not", function()
      local d, foo, deep = state(), state(), state()
      local b = moonbox.composite_backend{ default = d, routes = { ["/foo/"] = foo, ["/foo/bar/"] = deep } }
      assert(b:write("/foo/x.txt", "1"))
      assert(b:write("/foo/bar/y.txt", "2"))
      assert(b:write("/foobar/z.txt", "3"))
      assert.is_true(foo:exists("/x.txt"))
      assert.is_true(deep:exists("/y.txt"))
      assert.is_false(foo:exists("/bar/y.txt"))
      assert.is_true(d:exists("/foobar/z.txt"))
      assert.equal(foo, (b:resolve("/foo")))
      assert.same({ foo, "/", "/foo/" }, { b:resolve("/foo") })
      assert.same({ deep, "/y.txt", "/foo/bar/" }, { b:resolve("foo/bar/y.txt") })
      assert.same({ d, "/foobar/z.txt", "/" }, { b:resolve("/foobar/z.txt") })
      assert.same({ "/foo/bar/", "/foo/" }, b:routes())
    end)

    it("accepts a route registered without the trailing slash (/foo matches /foo/x)", function()
      local d, foo = state(), state()
      local b = moonbox.composite_backend{ default = d, routes = { ["/foo"] = foo } }
      assert(b:write("/foo/x", "1"))
      assert.is_true(foo:exists("/x"))
      assert(b:write("/foobar/x", "2"))
      assert.is_true(d:exists("/foobar/x"))
    end)

    it("refuses a route that would take every path (the reference ignored it)", function()
      assert.has_error(function() moonbox.composite_backend{ default = state(), routes = { ["/"] = state() } } end,
        "composite_backend: route '/' would take every path; make that backend the default instead")
    end)
  end)

  describe("nested mounts", function()
    local d, mem, notes, b
    before_each(function()
      d = state{ ["/src/main.c"] = at("2024-01-02T00:00:00Z"), ["/a.py"] = at("2024-01-05T00:00:00Z") }
      mem = state{ ["/m.py"] = at("2024-01-03T00:00:00Z") }
      notes = state{ ["/n.py"] = at("2024-01-04T00:00:00Z"), ["/deep/x.py"] = at("2024-01-01T00:00:00Z") }
      b = moonbox.composite_backend{ default = d, routes = { ["/var/mem/"] = mem, ["/var/mem/notes/"] = notes } }
    end)

    it("shows a nested mount in the listing of each parent", function()
      assert.same({ "src", "var", "a.py" }, names(b:ls("/")))
      assert.same({ { name = "mem", path = "/var/mem", is_dir = true } }, b:ls("/var"))
      assert.same({ "notes", "m.py" }, names(b:ls("/var/mem")))
      assert.same({ "/var/mem/notes/deep", "/var/mem/notes/n.py" }, paths(b:ls("/var/mem/notes")))
    end)

    it("globs across every mount, newest first", function()
      assert.same({ "/a.py", "/var/mem/notes/n.py", "/var/mem/m.py", "/var/mem/notes/deep/x.py" },
        paths(b:glob("**/*.py")))
      assert.same({ "/var/mem/notes/n.py", "/var/mem/m.py", "/var/mem/notes/deep/x.py" },
        paths(b:glob("**/*.py", "/var")))
      assert.same({ "/var/mem/m.py" }, paths(b:glob("var/mem/*.py")))
      assert.same({ "/var/mem/notes/n.py" }, paths(b:glob("var/*/notes/?.py")))
      assert.same({ "/var/mem/notes/deep/x.py" }, paths(b:glob("**/deep/*.py")))
      assert.same({ "/var/mem/notes/n.py", "/var/mem/m.py" }, paths(b:glob("var/mem/{m,notes/n}.py")))
      assert.same({ "/a.py" }, paths(b:glob("*.py")))
      assert.same({}, b:glob("var/*.py"))
    end)

    it("greps across every mount, sorted by path then line, with max over the whole", function()
      local r = b:grep("x = 1")
      assert.same({ "/a.py", "/src/main.c", "/var/mem/m.py", "/var/mem/notes/deep/x.py", "/var/mem/notes/n.py" },
        paths(r))
      assert.same({ "/a.py", "/src/main.c" }, paths(b:grep("x = 1", { max = 2 })))
      assert.same({ "/a.py", "/var/mem/m.py", "/var/mem/notes/deep/x.py", "/var/mem/notes/n.py" },
        paths(b:grep("x", { glob = "*.py" })))
      assert.same({ "/var/mem/notes/n.py" }, paths(b:grep("x", { glob = "var/mem/notes/*.py" })))
      assert.same({ "/var/mem/notes/deep/x.py" },
        paths(b:grep("x", { glob = "deep/*.py", path = "/var/mem/notes" })))
      assert.same({ "/var/mem/notes/deep/x.py", "/var/mem/notes/n.py" },
        paths(b:grep("x", { glob = "var/**/notes/**/*.py" })))
    end)

    it("skips a mount under a hidden or build directory unless asked", function()
      local hidden = state{ ["/h.txt"] = "needle\n" }
      local c = moonbox.composite_backend{ default = state{ ["/v.txt"] = "needle\n" }, routes = {
        ["/.cache/"] = hidden, ["/build/out/"] = state{ ["/o"] = "needle\n" } } }
      assert.same({ "/v.txt" }, paths(c:grep("needle")))
      assert.same({ "/.cache/h.txt", "/v.txt" }, paths(c:grep("needle", { ignore_hidden = false })))
      assert.same({ "/.cache/h.txt" }, paths(c:grep("needle", { path = "/.cache" })))
    end)
  end)

  describe("errors from the whole", function()
    it("returns the default's error first (an invalid regex)", function()
      local b = moonbox.composite_backend{ default = state{ ["/a"] = "x\n" }, routes = { ["/r/"] = state() } }
      local r, msg, code = b:grep("(unclosed")
      assert.is_nil(r)
      assert.equal("INVALID", code)
      assert.is_string(msg)
    end)

    it("returns a route's error when the default succeeds", function()
      -- the Lua-table backend's regex subset has no lookbehind; PCRE2 in the state backend has
      local b = moonbox.composite_backend{ default = state{ ["/a"] = "ab\n" },
                                           routes = { ["/lua/"] = lua_backend.new{ files = { ["/b"] = "ab\n" } } } }
      assert.same({ "/a" }, paths(b:grep("(?<=a)b", { path = "/a" })))
      local r, msg, code = b:grep("(?<=a)b")
      assert.is_nil(r)
      assert.is_string(msg)
      assert.is_string(code)
    end)

    it("lists a parent that only mounts hold", function()
      local b = moonbox.composite_backend{ default = state(), routes = { ["/a/b/"] = state{ ["/f"] = "1" } } }
      assert.same({ "b" }, names(b:ls("/a")))
      assert.same({ "/a/b/f" }, paths(b:glob("**", "/a")))
      local r, _, code = b:ls("/nothing")
      assert.is_nil(r)
      assert.equal("ENOENT", code)
    end)
  end)

  describe("over any backend", function()
    it("mounts a Lua-table backend and a local_backend with its own root", function()
      local dir, remove = tmpdir.make()
      local disk = moonbox.local_backend{ root = dir }
      local b = moonbox.composite_backend{ default = lua_backend.new(), routes = { ["/disk/"] = disk } }
      assert.same({ path = "/disk/notes/a.md" }, b:write("/disk/notes/a.md", "hello\n"))
      local f = assert(io.open(dir .. "/notes/a.md"))
      assert.equal("hello\n", f:read("a"))
      f:close()
      assert(b:write("/x.md", "hello\n"))
      assert.same({ "/disk/notes/a.md", "/x.md" }, paths(b:grep("hello")))
      assert.same({ "disk", "x.md" }, names(b:ls("/")))
      remove()
    end)

    it("lends a sandbox default's commands and lifecycle; a plain default has none", function()
      local dir, remove = tmpdir.make()
      local sb = moonbox.local_sandbox{ root = dir }
      local b = moonbox.composite_backend{ default = sb, routes = { ["/mem/"] = state() } }
      assert.equal(sb.id, b.id)
      local r = b:execute("echo hi")
      assert.equal("hi\n", r.output)
      assert.equal(0, r.exit_code)
      assert.is_function(b.spawn)
      assert.is_function(b.stop)
      local plain = moonbox.composite_backend{ default = state() }
      assert.is_nil(plain.execute)
      assert.is_nil(plain.spawn)
      if sb.stop then sb:stop() end
      remove()
    end)

    it("forwards execute to a Lua-table sandbox", function()
      local fake = lua_backend.new()
      local calls = {}
      function fake:execute(cmd, opts) -- luacheck: ignore 212
        calls[#calls + 1] = cmd
        return { output = "ran " .. cmd, exit_code = 0, truncated = false, timed_out = false }
      end
      local b = moonbox.composite_backend{ default = fake, routes = { ["/m/"] = state() } }
      assert.equal("ran ls", b:execute("ls").output)
      assert.same({ "ls" }, calls)
    end)
  end)

  describe("misuse", function()
    it("raises on bad options and arguments", function()
      assert.has_error(function() moonbox.composite_backend() end)
      assert.has_error(function() moonbox.composite_backend{ routes = {} } end)
      assert.has_error(function() moonbox.composite_backend{ default = {} } end)
      assert.has_error(function() moonbox.composite_backend{ default = state(), route = {} } end,
        "composite_backend: unknown option 'route' (known: default, routes, strip_prefix)")
      assert.has_error(function() moonbox.composite_backend{ default = state(), routes = { ["/x/"] = 1 } } end)
      assert.has_error(function()
        moonbox.composite_backend{ default = state(), routes = { ["/a/../b/"] = state() } }
      end)
      assert.has_error(function()
        moonbox.composite_backend{ default = state(), routes = { ["/a/"] = state(), ["/a"] = state() } }
      end)
      assert.has_error(function() moonbox.composite_backend{ default = state(), strip_prefix = "yes" } end)
      local b = moonbox.composite_backend{ default = state() }
      assert.has_error(function() b:read(nil) end, nil)
      assert.has_error(function() b:grep("x", { path = 1 }) end)
    end)
  end)
end)
