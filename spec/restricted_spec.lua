-- moonbox.restricted: the wall around tenant policy code (allow-list, text only, memory cap,
-- deadline, plain data across).
local restricted = require "moonbox.restricted"
local monotonic = require("moonbox.core").monotonic

describe("moonbox.restricted", function()
  local st
  before_each(function() st = restricted.new() end)
  after_each(function() st:close() end)

  -- A deadline far enough away that a memory or size limit is what stops the chunk, even under
  -- a sanitizer build.
  local function roomy() return restricted.new{ timeout = 3 } end

  local function fails(code, source, pattern, state)
    state = state or st
    local t0 = monotonic()
    local v, msg, got = state:run(source, "=attack.lua")
    assert.is_nil(v)
    assert.are.equal(code, got, msg)
    if pattern then assert.matches(pattern, msg) end
    assert.is_true(monotonic() - t0 < 4, "contained quickly")
    -- the state (and the host) keep working afterwards
    assert.are.equal(42, state:run("return 42"))
    if state ~= st then state:close() end
    return msg
  end

  describe("happy path", function()
    it("runs a chunk and copies its result out as plain data", function()
      local v = st:run([[return { a = 1, b = { "x", "y" }, c = true, d = 1.5, [3] = "three" }]])
      assert.are.same({ a = 1, b = { "x", "y" }, c = true, d = 1.5, [3] = "three" }, v)
      assert.are.equal(math.type(v.a), "integer")
    end)

    it("keeps functions of the result table as exports and calls them", function()
      local v = st:run([[
        local n = 0
        return { kind = "t", decide = function(req) n = n + 1; return "allow", req.op .. n end }]])
      assert.are.same({ kind = "t" }, v)
      assert.is_true(st:has("decide"))
      assert.is_false(st:has("other"))
      assert.are.same({ true, "allow", "read1" }, { st:call("decide", { op = "read" }) })
      assert.are.same({ true, "allow", "write2" }, { st:call("decide", { op = "write" }) })
    end)

    it("calls global functions too", function()
      st:run("function twice(x) return x * 2 end")
      assert.are.same({ true, 10 }, { st:call("twice", 5) })
    end)

    it("collects print output in a bounded log, never on stdout", function()
      local big = restricted.new{ timeout = 5 }
      big:run([[print("hello", 1, true) for i = 1, 300 do print(("x"):rep(2000)) end]])
      local log = big:log()
      big:close()
      assert.are.equal("hello\t1\ttrue", log[1])
      assert.are.equal(200, #log)
      assert.are.equal(1024, #log[2])
    end)

    it("reports its memory use and limit", function()
      local used, limit = st:memory()
      assert.is_true(used > 0 and used < limit)
      assert.are.equal(8 * 1024 * 1024, limit)
    end)

    it("offers the allowed libraries and nothing else", function()
      local v = st:run([[
        local names = {}
        for k in pairs(_G) do names[#names + 1] = k end
        table.sort(names)
        return names]])
      assert.are.same({ "_G", "_VERSION", "assert", "clone", "error", "ipairs", "math", "next",
                        "pairs", "pcall", "print", "select", "string", "table", "tonumber",
                        "tostring", "type", "utf8", "xpcall" }, v)
      assert.is_nil(st:run("return string.dump"))
    end)
  end)

  describe("forbidden globals", function()
    for _, name in ipairs({ "load", "loadfile", "dofile", "require", "io", "os", "debug",
                            "collectgarbage", "setmetatable", "getmetatable", "rawset", "rawget",
                            "rawequal", "rawlen", "package", "coroutine" }) do
      it("refuses " .. name, function()
        fails("INVALID", "return " .. name, "'" .. name .. "' is not available to a policy")
      end)
    end

    it("refuses string.dump", function()
      fails("INVALID", "return string.dump(function() end)", "attempt to call a nil value")
    end)

    it("raises on undefined globals instead of reading nil", function()
      fails("INVALID", "return undefined_thing", "undefined global 'undefined_thing'")
    end)

    it("cannot reach the real string library through a string's metatable", function()
      fails("INVALID", [[return (""):dump()]], "attempt to call a nil value")
    end)
  end)

  describe("bytecode", function()
    it("refuses a precompiled chunk", function()
      fails("INVALID", string.dump(function() return 1 end), "bytecode")
    end)

    it("refuses anything that starts like bytecode", function()
      fails("INVALID", "\27Lua junk", "bytecode")
    end)
  end)

  describe("deadline", function()
    it("stops an endless loop", function() fails("TIMEOUT", "while true do end", "deadline of 50 ms") end)

    it("stops an endless loop that pcall tries to shield", function()
      fails("TIMEOUT", "while true do pcall(function() while true do end end) end")
    end)

    it("stops an endless loop in an error handler", function()
      fails("TIMEOUT", "xpcall(error, function() while true do end end)")
    end)

    it("stops endless recursion through a C function", function()
      fails("TIMEOUT", [[local function f() return select(2, pcall(f)) end
                         while true do f() end]])
    end)

    it("stops a catastrophic pattern (find)", function()
      fails("TIMEOUT", [[return ("a"):rep(1e5):find(".-.-.-.-b")]])
    end)

    it("stops a catastrophic pattern (match, gsub, gmatch)", function()
      fails("TIMEOUT", [[return ("a"):rep(5e4):match("^(.-)(.-)(.-)(.-)b")]])
      fails("TIMEOUT", [[return (("a"):rep(1e5):gsub(".-.-.-b", ""))]])
      fails("TIMEOUT", [[for x in ("a"):rep(1e5):gmatch(".-.-.-b") do end]])
    end)

    it("runs a big plain find in linear time", function()
      local big = restricted.new{ timeout = 5 }
      local t0 = monotonic()
      local v = big:run([[return (("a"):rep(2e6) .. "b"):find(("a"):rep(5e5) .. "b", 1, true)]])
      big:close()
      assert.are.equal(1500001, v)
      assert.is_true(monotonic() - t0 < 1)
    end)

    it("applies to every call of an export", function()
      st:run([[return { spin = function() while true do end end, ok = function() return 1 end }]])
      local ok, msg, code = st:call("spin")
      assert.is_nil(ok)
      assert.are.equal("TIMEOUT", code, msg)
      assert.are.same({ true, 1 }, { st:call("ok") })
    end)

    it("returns at once from a rep of nothing, however many times", function()
      assert.equal("", st:run([[return (""):rep(math.maxinteger)]]))
      assert.equal("--", st:run([[return (""):rep(3, "-")]]))
      assert.equal("ab,ab,ab", st:run([[return ("ab"):rep(3, ",")]]))
      assert.equal("q", st:run([[return ("q"):rep(1, "-")]]))
    end)

    it("stops a table.move over a huge range", function()
      fails("TIMEOUT", [[table.move({}, 1, 1e15, 2)]])
      assert.equal("2,3,4,4,5", st:run([[return table.concat(table.move({ 1, 2, 3, 4, 5 }, 2, 4, 1), ",")]]))
      assert.equal("1,2,1,2,3", st:run([[return table.concat(table.move({ 1, 2, 3 }, 1, 3, 3), ",")]]))
      assert.equal("1,2,9", st:run([[return table.concat(table.move({ 1, 2 }, 1, 2, 1, { 9, 9, 9 }), ",")]]))
    end)

    it("finishes every library function on hostile arguments (no unbounded loop in C)", function()
      local list = st:run([[
        local t = {}
        for _, lib in ipairs({ "string", "table", "math", "utf8" }) do
          for k, v in pairs(_G[lib]) do if type(v) == "function" then t[#t + 1] = lib .. "." .. k end end
        end
        for _, k in ipairs({ "assert", "ipairs", "next", "pairs", "select", "tonumber", "tostring", "type" }) do
          t[#t + 1] = k
        end
        table.sort(t)
        return t]])
      assert.is_true(#list > 60)
      local sweep = [==[
        local f = assert(load_target())
        local BIG = { math.maxinteger, math.mininteger, 1e15, -1e15, 2^31, -2^31, 0, -1, 1e308, 0/0 }
        for _, a in ipairs({ "", "x", ("ab"):rep(1000), {}, { 1, 2, 3 }, true, 1.5 }) do
          for _, n in ipairs(BIG) do
            pcall(f, a, n); pcall(f, a, 1, n); pcall(f, a, n, n); pcall(f, a, 1, n, 2)
            pcall(f, a, n, "-"); pcall(f, a, a, n); pcall(f, n, a); pcall(f, a, 1, n, 2, {})
            pcall(f, "%d", n); pcall(f, a, "(.-)(.-)(.-)b", n)
          end
        end
        return "ok"]==]
      for _, name in ipairs(list) do
        local probe = restricted.new{ timeout = 0.2 }
        local lib, fname = name:match("^(%w+)%.(%w+)$")
        local getter = lib and string.format("function load_target() return %s[%q] end", lib, fname)
          or string.format("function load_target() return %s end", name)
        probe:run(getter)
        local t0 = monotonic()
        local r, msg, code = probe:run(sweep, "=sweep " .. name)
        probe:close()
        assert.is_true(r == "ok" or code == "TIMEOUT", name .. ": " .. tostring(msg))
        assert.is_true(monotonic() - t0 < 3, name .. " took too long")
      end
    end)

    it("honours the timeout option", function()
      local slow = restricted.new{ timeout = 0.2 }
      local t0 = monotonic()
      local _, _, code = slow:run("while true do end")
      local dt = monotonic() - t0
      slow:close()
      assert.are.equal("TIMEOUT", code)
      assert.is_true(dt >= 0.19 and dt < 1.5, tostring(dt))
    end)

    it("lets a fast chunk finish untouched", function()
      -- (small: the default deadline is 50 ms of wall time, and a busy machine may not run us for long)
      assert.are.equal(50005000, st:run("local s = 0 for i = 1, 10000 do s = s + i end return s"))
    end)
  end)

  describe("memory cap", function()
    it("stops a table that grows without bound", function()
      fails("ENOMEM", "local t = {} while true do t[#t + 1] = {} end", "memory limit of 8192 KiB", roomy())
    end)

    it("stops string doubling", function()
      fails("ENOMEM", [[local s = "x" while true do s = s .. s end]], nil, roomy())
    end)

    it("stops a huge string.rep", function() fails("ENOMEM", [[return ("x"):rep(1e9)]], nil, roomy()) end)

    it("refuses an impossible string.rep at once", function()
      fails("INVALID", [[return ("x"):rep(1e12)]], "too large", roomy())
    end)

    it("stops a huge table.concat", function()
      fails("ENOMEM", [[local t = {} for i = 1, 1e5 do t[i] = ("y"):rep(100) end return table.concat(t)]],
            nil, roomy())
    end)

    it("honours the memory option", function()
      local small = restricted.new{ memory = 256 * 1024 }
      local _, _, code = small:run([[return ("x"):rep(300 * 1024)]])
      assert.are.equal("ENOMEM", code)
      assert.are.equal(3, small:run("return 3"))
      small:close()
    end)

    it("fails cleanly when the cap is too small for the libraries", function()
      local s, msg, code = restricted.new{ memory = 64 * 1024 }
      if s then s:close() else
        assert.are.equal("ENOMEM", code)
        assert.matches("too few", msg)
      end
    end)
  end)

  describe("errors and garbage", function()
    it("reports a syntax error", function() fails("INVALID", "return {", "attack.lua:1:") end)

    it("reports a runtime error with its message", function()
      fails("INVALID", [[error("boom")]], "attack.lua:1: boom")
    end)

    it("reports a non-string error value", function()
      fails("INVALID", [[error({})]], "raised a table value")
    end)

    it("refuses a function in the result", function()
      fails("INVALID", [[return { tools = { x = print } }]], "result.tools.x: is a function")
    end)

    it("refuses a function as the result", function() fails("INVALID", [[return print]], "is a function") end)

    it("refuses a table key", function() fails("INVALID", [[return { [{}] = 1 }]], "cannot be a key") end)

    it("refuses a cycle", function()
      fails("INVALID", [[local t = {} t.t = t return t]], "nests deeper than 32 levels", roomy())
    end)

    it("refuses a result with too many values (a DAG that explodes)", function()
      fails("INVALID", [[local t = {} for i = 1, 30 do t = { t, t } end return t]], "more than 100000 values", roomy())
    end)

    it("refuses a result that repeats a big string past the byte budget", function()
      fails("INVALID", [[local s = ("x"):rep(4e6) return { s, s, s, s, s }]], "larger than", roomy())
    end)

    it("refuses garbage from an export", function()
      st:run([[return { f = function() return function() end end }]])
      local ok, msg, code = st:call("f")
      assert.is_nil(ok)
      assert.are.equal("INVALID", code)
      assert.matches("a returned value: is a function", msg)
    end)

    it("refuses an export that returns too many values", function()
      st:close()
      st = roomy() -- 100000 values can take longer than the default 50 ms on a busy ASan build
      st:run([[return { many = function() local t = {} for i = 1, 100000 do t[i] = i end return table.unpack(t) end,
                        few = function() return 1, 2, 3 end }]])
      local ok, msg, code = st:call("many")
      assert.is_nil(ok)
      assert.are.equal("INVALID", code)
      assert.matches("returned 100000 values; at most 64", msg)
      assert.are.same({ true, 1, 2, 3 }, { st:call("few") })
    end)

    it("reports a missing export", function()
      local ok, msg, code = st:call("nope")
      assert.is_nil(ok)
      assert.are.equal("INVALID", code)
      assert.matches("no function 'nope'", msg)
    end)
  end)

  describe("read-only data", function()
    before_each(function()
      st:set("presets", { DEFAULT = { default = "ask", read = { rules = { { pattern = "**/.env" } } } } }, true)
    end)

    it("reads through, iterates and measures", function()
      local v = st:run([[
        local r = presets.DEFAULT.read.rules
        local keys = {}
        for k in pairs(presets.DEFAULT) do keys[#keys + 1] = k end
        table.sort(keys)
        local n = 0
        for _, x in ipairs(r) do n = n + #x.pattern end
        return { keys = keys, len = #r, n = n, cat = table.concat({ r[1].pattern, "!" }) }]])
      assert.are.same({ keys = { "default", "read" }, len = 1, n = 7, cat = "**/.env!" }, v)
    end)

    for _, src in ipairs({
      [[presets.DEFAULT.default = "allow"]],
      [[presets.DEFAULT.read.rules[1].pattern = "x"]],
      [[table.insert(presets.DEFAULT.read.rules, { pattern = "x" })]],
      [[table.remove(presets.DEFAULT.read.rules)]],
      [[table.sort(presets.DEFAULT.read.rules, function() return false end) presets.DEFAULT.x = 1]],
      [[local _, t = pairs(presets.DEFAULT) t.default = "allow"]],
      [[presets.NEW = {}]],
    }) do
      it("refuses a write: " .. src, function()
        fails("INVALID", src, "read%-only")
        assert.are.equal("ask", st:run("return presets.DEFAULT.default"))
        assert.are.equal("**/.env", st:run("return presets.DEFAULT.read.rules[1].pattern"))
      end)
    end

    it("hides the real table behind its metatable", function()
      fails("INVALID", [[return getmetatable(presets)]], "not available")
    end)

    it("copies with clone() into a table the policy may change", function()
      local v = st:run([[
        local c = clone(presets.DEFAULT)
        c.default = "deny"
        c.read.rules[1].pattern = "x"
        return { c, presets.DEFAULT }]])
      assert.are.same({ { default = "deny", read = { rules = { { pattern = "x" } } } },
                        { default = "ask", read = { rules = { { pattern = "**/.env" } } } } }, v)
    end)

    it("copies a proxy out as its data", function()
      assert.are.same({ { pattern = "**/.env" } }, st:run("return presets.DEFAULT.read.rules"))
    end)
  end)

  describe("pattern matching is Lua's", function()
    local cases = {
      { "hello world", "o w" }, { "hello world", "(%w+) (%w+)" }, { "key = value", "^(%w+)%s*=%s*(%w+)$" },
      { "  trim  ", "^%s*(.-)%s*$" }, { "a,b,,c", "([^,]*)" }, { "THE (quick) fox", "%((%a+)%)" },
      { "f(a(b)c)d", "%b()" }, { "THE (quick) fox", "%f[%a]%a+" }, { "abcabc", "(abc)%1" },
      { "hello", "()ll()" }, { "x = 10", "%d+$" }, { "x = 10", "^%d" }, { "[]]", "[]]" },
      { "a-b", "[a%-]+" }, { "aXb", "[^%l]" }, { "path/to/file.lua", "([^/]+)%.(%w+)$" },
      { "a+b", "a+b" }, { "a.b", "a.b", 1, true }, { "abc", "", 10 }, { "abc", "b", -1 },
      { "abc", "b", -10 }, { "aaa", "a-", 2 }, { "aaa", "a*?" }, { "é", "[\128-\255]+" },
      { "nul\0byte", "%z?\0b" }, { "x$y", "x$y" }, { "abc", "^(a)(b)(c)$" }, { "aaab", "a-b" },
      { "one two", "%s*()" },
    }
    for i, c in ipairs(cases) do
      it("find/match case " .. i .. ": " .. c[2], function()
        st:set("c", c)
        local want_find = { string.find(c[1], c[2], c[3], c[4]) }
        local want_match = { string.match(c[1], c[2], c[3]) }
        assert.are.same(want_find, st:run("return { string.find(c[1], c[2], c[3], c[4]) }"))
        if not c[4] then assert.are.same(want_match, st:run("return { string.match(c[1], c[2], c[3]) }")) end
      end)
    end

    local subs = {
      { "hello world", "o", "0" }, { "hello world", "(%w+)", "<%1>" }, { "abc", "", "-" },
      { "hello", "l+", { ll = "LL" } }, { "x=1 y=2", "(%w+)=(%w+)", "%2=%1" }, { "abc", "%w", "%0%0", 2 },
      { "a b c", "%s", "%%" }, { "abc", "^a", "A" }, { "aaa", "a*", "-" },
    }
    for i, c in ipairs(subs) do
      it("gsub case " .. i, function()
        st:set("c", c)
        assert.are.same({ string.gsub(c[1], c[2], c[3], c[4]) },
                        st:run("return { string.gsub(c[1], c[2], c[3], c[4]) }"))
      end)
    end

    it("gsub with a function, and false keeps the match", function()
      assert.are.same({ "HELLO world", 2 },
                      st:run([[return { ("hello world"):gsub("%w+", function(w)
                                 if w == "hello" then return w:upper() end return false end) }]]))
    end)

    it("gmatch with captures, an init position and empty matches", function()
      local src = [[
        local out = {}
        for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do out[#out + 1] = k .. v end
        for w in ("one two three"):gmatch("%a+", 5) do out[#out + 1] = w end
        local n = 0
        for _ in ("abc"):gmatch("x*") do n = n + 1 end
        out[#out + 1] = n
        return out]]
      local want = {}
      for k, v in ("a=1, b=2"):gmatch("(%w+)=(%w+)") do want[#want + 1] = k .. v end
      for w in ("one two three"):gmatch("%a+", 5) do want[#want + 1] = w end
      local n = 0
      for _ in ("abc"):gmatch("x*") do n = n + 1 end
      want[#want + 1] = n
      assert.are.same(want, st:run(src))
    end)

    for _, bad in ipairs({ { "%", "ends with '%%'" }, { "[a", "missing ']'" }, { "(a", "unfinished capture" },
                           { "a.)", "invalid pattern capture" }, { "%1", "invalid capture index %%1" },
                           { "%b", "missing arguments to '%%b'" }, { "%f", "missing '%['" } }) do
      it("raises Lua's error for the malformed pattern " .. bad[1], function()
        local ok, err = pcall(string.find, "abc", bad[1])
        assert.is_false(ok)
        assert.matches(bad[2], err)
        fails("INVALID", "return ('abc'):find('" .. bad[1] .. "')", bad[2])
      end)
    end

    it("raises on a bad replacement", function()
      fails("INVALID", [[return ("abc"):gsub("b", "%9")]], "invalid capture index %%9")
      fails("INVALID", [[return ("abc"):gsub("b", "%x")]], "invalid use of '%%'")
      fails("INVALID", [[return ("abc"):gsub("b", function() return {} end)]], "invalid replacement value")
    end)
  end)

  describe("misuse", function()
    it("raises on an unknown option", function()
      assert.has_error(function() restricted.new{ memroy = 1 } end,
        "restricted.new: unknown option 'memroy' (known: memory, timeout, max_depth, max_items, max_bytes)")
    end)

    it("raises on a bad timeout", function()
      assert.has_error(function() restricted.new{ timeout = 0 } end)
      assert.has_error(function() restricted.new{ memory = "big" } end)
    end)

    it("raises when a host function is handed in", function()
      assert.has_error(function() st:set("f", print) end)
      assert.has_error(function() st:call("f", { print }) end)
    end)

    it("raises on use after close; close is idempotent", function()
      local s = restricted.new()
      s:close()
      s:close()
      assert.has_error(function() s:run("return 1") end, "attempt to use a closed moonbox.restricted.State")
      assert.matches("closed", tostring(s))
    end)

    it("releases a state left to the garbage collector", function()
      for _ = 1, 20 do restricted.new():run("return 1") end
      collectgarbage()
      collectgarbage()
    end)
  end)
end)
