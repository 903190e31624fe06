-- moonbox.daytona_sandbox against the FAKE Daytona API (spec/support/fake_daytona.mjs): no Daytona
-- account is used. Lifecycle, errors, execute, files over upload/download, background processes,
-- and the backend conformance suite.
local moonbox = require "moonbox"
local http = require "moonbox.http"
local json = require "moonbox.json"
local conformance = require "spec.support.conformance.backend"

local proc = assert(io.popen("exec node spec/support/fake_daytona.mjs --parent $PPID --key fake-key", "r"))
local port = tonumber((proc:read("l") or ""):match("^PORT (%d+)"))
assert(port, "fake_daytona did not start")
local url = "http://127.0.0.1:" .. port

local function fake_state() return json.decode(assert(http.request { url = url .. "/_fake/state" }).body) end
local function configure(t)
  assert(http.request { url = url .. "/_fake/config", method = "POST", body = json.encode(t) })
end

local function sandbox(extra)
  local o = { api_key = "fake-key", api_url = url, poll_interval = 0.1 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return moonbox.daytona_sandbox(o)
end

describe("daytona_sandbox (fake Daytona API)", function()
  before_each(function() configure { startAfter = 200 } end)

  it("needs an API key, with the reference's message", function()
    local sb, msg, code = moonbox.daytona_sandbox { api_url = url, api_key = "" }
    assert.is_nil(sb)
    assert.equal("CONFIG", code)
    assert.equal("Daytona API key is required. Pass api_key= or set DAYTONA_API_KEY.", msg)
    assert.has_error(function() moonbox.daytona_sandbox { api_key = "k", bogus = 1 } end,
      "daytona_sandbox: unknown option 'bogus'")
  end)

  it("reports a wrong key as AUTH", function()
    local sb, msg, code = sandbox { api_key = "wrong" }
    assert.is_nil(sb)
    assert.equal("AUTH", code)
    assert.matches("daytona: create sandbox: HTTP 401: Unauthorized", msg, 1, true)
  end)

  it("creates the sandbox, waits until it answers, and deletes it on stop", function()
    local t0 = moonbox.now()
    local sb = assert(sandbox { params = { snapshot = "fake-snap" } })
    assert.is_true(moonbox.now() - t0 >= 0.15, "the constructor returned before the sandbox started")
    local st = fake_state()
    assert.equal(sb.id, st.created[#st.created].id)
    assert.same({ snapshot = "fake-snap" }, st.created[#st.created].params)
    assert.equal("started", assert(sb:info()).state)
    assert.is_true(sb:is_alive())
    assert.is_true(sb:start())
    assert.is_true(sb:stop())
    st = fake_state()
    assert.equal(sb.id, st.deleted[#st.deleted])
    assert.is_false(sb:is_alive())
    assert.is_true(sb:stop())
  end)

  it("deletes the sandbox and fails when it does not start in time", function()
    configure { startAfter = -1 }
    local sb, msg, code = sandbox { startup_timeout = 0.5 }
    assert.is_nil(sb)
    assert.equal("TIMEOUT", code)
    assert.equal("Daytona sandbox failed to start within 0.5 seconds", msg)
    local st = fake_state()
    assert.equal(st.created[#st.created].id, st.deleted[#st.deleted])
  end)

  it("attaches to an existing sandbox by id, and says when there is none", function()
    local a = assert(sandbox())
    local b = assert(sandbox { sandbox_id = a.id })
    assert(a:write("/shared.txt", "from a"))
    assert.equal("from a", b:read_bytes("/shared.txt"))
    local none, msg, code = sandbox { sandbox_id = "no-such-id" }
    assert.is_nil(none)
    assert.equal("NOT_FOUND", code)
    assert.matches("HTTP 404: Sandbox with ID no-such-id not found", msg, 1, true)
    -- an id is one path segment: "../sandbox" does not reach another endpoint
    none, msg, code = sandbox { sandbox_id = "x/../../sandbox" }
    assert.is_nil(none)
    assert.equal("NOT_FOUND", code)
    assert.matches("x%2F..%2F..%2Fsandbox", msg, 1, true)
    assert(a:stop())
  end)

  describe("a started sandbox", function()
    local sb
    setup(function()
      configure { startAfter = 0 }
      sb = assert(sandbox { max_output = 1000 })
    end)
    teardown(function() sb:stop() end)

    it("executes in work_dir with exit codes, merged output and truncation", function()
      local r = assert(sb:execute("echo out; echo err >&2; exit 3"))
      assert.equal("out\nerr\n", r.output)
      assert.equal(3, r.exit_code)
      assert.is_false(r.truncated)
      assert.matches("/home$", sb:execute("pwd").output:gsub("\n$", ""))
      r = assert(sb:execute("head -c 5000 /dev/zero | tr '\\0' y"))
      assert.equal(1000, #r.output)
      assert.is_true(r.truncated)
      assert(sb:write("/d/x", ""))
      assert.equal("x\n", sb:execute("ls", { cwd = "d" }).output)
    end)

    it("times a command out with exit code 124 and the output so far", function()
      local r = assert(sb:execute("echo early; sleep 5", { timeout = 1 }))
      assert.equal(124, r.exit_code)
      assert.is_true(r.timed_out)
      assert.equal("early\n", r.output)
    end)

    it("uploads and downloads files (every byte value), exists through file info", function()
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      local data = string.rep(table.concat(bytes), 100)
      assert.same({ path = "/bin/blob" }, sb:write("/bin/blob", data))
      assert.equal(data, sb:read_bytes("/bin/blob"))
      assert.is_true(sb:exists("/bin/blob"))
      assert.is_false(sb:exists("/bin"))
      assert.is_false(sb:exists("/nope"))
      local st = fake_state()
      local uploads, downloads = 0, 0
      for _, r in ipairs(st.requests) do
        if r:match("files/upload$") then uploads = uploads + 1 end
        if r:match("files/download$") then downloads = downloads + 1 end
      end
      assert.is_true(uploads >= 1 and downloads >= 1)
      local _, msg, code = sb:read_bytes("/missing")
      assert.equal("ENOENT", code)
      assert.equal("read_bytes /missing: no such file", msg)
    end)

    it("runs background processes", function()
      local id = assert(sb:spawn("echo a; sleep 0.2; echo b; exit 2"))
      local out, r = {}, nil
      for _ = 1, 50 do
        r = assert(sb:read_output(id))
        out[#out + 1] = r.output
        if not r.running then break end
        moonbox.sleep(0.1)
      end
      assert.equal("a\nb\n", table.concat(out))
      assert.equal(2, r.exit_code)
      local long = assert(sb:spawn("sleep 30"))
      assert.is_true(sb:list()[2].running)
      assert.is_true(sb:kill(long))
      assert.is_false(sb:list()[2].running)
    end)
  end)
end)

describe("daytona_sandbox conformance (fake Daytona API)", function()
  teardown(function()
    http.request { url = url .. "/_shutdown" }
    proc:close()
  end)
  local shared
  conformance("daytona_sandbox (fake Daytona API)", function()
    -- one sandbox, a fresh work_dir per case (creating a sandbox per case would only re-test create)
    if not shared then
      configure { startAfter = 0 }
      shared = assert(sandbox())
    end
    local dir = "/home/daytona/case-" .. tostring(math.random(1 << 30))
    assert(shared:execute("mkdir -p " .. dir))
    local sb = assert(sandbox { sandbox_id = shared.id, work_dir = dir })
    return sb, function() shared:execute("rm -rf " .. dir) end
  end)
end)
