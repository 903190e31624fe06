-- moonbox.namespace: the native half of the namespace sandbox (helper lookup, the holder
-- process, per-sandbox cgroups) and moonbox-nsexec's own argument handling.
local native = require "moonbox.namespace"
local tmp = require "spec.support.tmpdir"

local q = tmp.sh_quote

local function host(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  local ok, _, code = p:close()
  return s, ok and 0 or code
end

describe("moonbox.namespace", function()
  local root, cleanup
  setup(function() root, cleanup = tmp.make() end)
  teardown(function() cleanup() end)

  it("finds moonbox-nsexec beside the binary or moonbox.so", function()
    local path = assert(native.helper())
    assert.matches("/moonbox%-nsexec$", path)
  end)

  it("starts a holder whose token joins its namespaces, and reaps it", function()
    local helper = native.helper()
    local h = assert(native.hold(helper, { "--root", root }))
    local token = h:token()
    assert.matches("^%d+:%d+$", token)
    assert.is_true(h:alive())
    local out, code = host(q(helper) .. " --join " .. token .. " -- /bin/sh -c 'id -u; exit 3'")
    assert.are.equal("1000\n", out)
    assert.are.equal(3, code)
    h:close()
    h:close() -- idempotent
    assert.is_false(h:alive())
    assert.has_error(function() h:token() end, "attempt to use a closed Holder")
    -- a recycled or dead holder is refused, never joined
    out, code = host(q(helper) .. " --join " .. token .. " -- /bin/sh -c 'echo ran' 2>&1")
    assert.are.equal(125, code)
    assert.matches("holder process %d+ is gone", out)
  end)

  it("runs a spare's command from the header on its stdin; refuses a bad one", function()
    local helper = native.helper()
    local h = assert(native.hold(helper, { "--root", root }))
    local function spare(bytes)
      local f = assert(io.open(root .. "/stdin", "wb"))
      f:write(bytes)
      f:close()
      return host(q(helper) .. " --join " .. h:token() .. " < " .. q(root .. "/stdin") .. " 2>&1")
    end
    local function header(fields)
      local payload = table.concat(fields, "\0") .. "\0"
      return string.format("MBX1%08x", #payload) .. payload
    end
    -- stdin mode 1: what follows the header is the command's stdin
    local out, code = spare(header{ "1", "/workspace", "1", "GREETING=hi", "/bin/sh", "-c",
      "echo $GREETING; pwd; id -u; cat; exit 4" } .. "the rest")
    assert.are.equal("hi\n/workspace\n1000\nthe rest", out)
    assert.are.equal(4, code)
    -- stdin mode 0: /dev/null, whatever follows
    out = spare(header{ "0", "/", "0", "/bin/sh", "-c", "pwd; cat" } .. "unread")
    assert.are.equal("/\n", out)
    for _, bad in ipairs{ "MBX2" .. header{ "0", "/", "0", "/bin/true" }:sub(5),
      header{ "0", "/", "2", "A=1", "/bin/true" }, header{ "0", "/", "0", "relative" },
      "MBX1ffffffff", "MBX100000004abc", "MBX1" } do
      out, code = spare(bad)
      assert.are.equal(125, code)
      assert.matches("bad command header", out)
    end
    out, code = spare("") -- dropped before its command: ends quietly
    assert.are.equal(125, code)
    assert.are.equal("", out)
    h:close()
  end)

  it("says UNSUPPORTED, with the helper's reason, when namespaces are refused", function()
    local h, msg, code = native.hold(native.helper(), { "--root", root, "--deny-userns" })
    assert.is_nil(h)
    assert.are.equal("UNSUPPORTED", code)
    assert.matches("unshare%(user, mount namespaces%): Operation not permitted", msg)
    assert.is_nil(msg:find("\n", 1, true))
  end)

  it("says UNSUPPORTED for a root it cannot bind", function()
    local h, msg, code = native.hold(native.helper(), { "--root", root .. "/missing" })
    assert.is_nil(h)
    assert.are.equal("UNSUPPORTED", code)
    assert.matches("missing: No such file or directory", msg)
  end)

  it("refuses bad helper arguments with status 125", function()
    local helper = native.helper()
    for _, args in ipairs{ "--bogus", "--join", "--join 1:2", "--hold", "--hold --root /x --ro rel",
      "--join 1:2 --cpu -3 -- /bin/true" } do
      local out, code = host(q(helper) .. " " .. args .. " 2>&1")
      assert.are.equal(125, code, args)
      assert.matches("moonbox%-nsexec: ", out, args)
    end
  end)

  it("creates and removes per-sandbox cgroups where the host allows", function()
    local cg = native.cgroup_create{ memory = 64 * 1024 * 1024, pids = 16 }
    assert.is_table(cg.dirs)
    assert.is_true(cg.version == 1 or cg.version == 2)
    if cg.memory or cg.pids then
      for _, dir in ipairs(cg.dirs) do assert.matches("/moonbox%-%d+%-%d+$", dir) end
      assert.is_true(native.cgroup_remove(cg.dirs))
      for _, dir in ipairs(cg.dirs) do assert.is_nil(io.open(dir .. "/cgroup.procs")) end
    else
      assert.is_string(cg.why)
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() native.hold() end)
    assert.has_error(function() native.hold(native.helper(), { 1, {} }) end)
    assert.has_error(function() native.cgroup_create() end)
    assert.has_error(function() native.cgroup_remove{ "/tmp" } end)
  end)
end)
