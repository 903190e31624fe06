-- moonbox.docker_sandbox against a real daemon (spec/support/docker.lua: MOONBOX_TEST_DOCKER_HOST
-- and the local busybox test image; network "none" everywhere, nothing leaves the machine).
-- The reference's DockerSandbox cases (pydantic-ai-backend §4.2, §5.3, §9.14) and what a
-- sandbox must do beyond them: host-enforced timeouts that kill grandchildren inside the
-- container, bounded output, background processes, 20 containers driven at once.
local moonbox = require "moonbox"
local http = require "moonbox.http"
local json = require "moonbox.json"
local docker = require "spec.support.docker"

describe("docker_sandbox without a daemon", function()
  it("answers UNAVAILABLE naming the socket when nothing listens there", function()
    local sb = moonbox.docker_sandbox { socket = "/nonexistent/moonbox/docker.sock", image = "x" }
    local r, msg, code = sb:execute("true")
    assert.is_nil(r)
    assert.equal("UNAVAILABLE", code)
    assert.matches("^docker: cannot connect to /nonexistent/moonbox/docker.sock: ", msg)
    assert.is_false(sb:is_alive())
    local ok, smsg, scode = sb:write("/a.txt", "x")
    assert.is_nil(ok)
    assert.equal("UNAVAILABLE", scode)
    assert.matches("cannot connect", smsg)
  end)

  it("takes the socket from DOCKER_HOST and refuses what is not a unix socket", function()
    assert.has_error(function() moonbox.docker_sandbox { socket = "tcp://127.0.0.1:2375" } end,
      "docker_sandbox: only unix sockets are supported (unix:///path), got 'tcp://127.0.0.1:2375'")
  end)

  it("raises for unknown options and bad values", function()
    assert.has_error(function() moonbox.docker_sandbox { imgae = "x" } end, "docker_sandbox: unknown option 'imgae'")
    assert.has_error(function() moonbox.docker_sandbox { pids = "many" } end)
    assert.has_error(function() moonbox.docker_sandbox { work_dir = "relative" } end)
    assert.has_error(function() moonbox.docker_sandbox { runtime = "no-such-runtime" } end)
  end)
end)

if not docker.socket then
  pending("docker_sandbox against a daemon: " .. docker.why)
  return
end

local API = "http://localhost/v1.41"
local function inspect(id)
  local r = assert(http.request { url = API .. "/containers/" .. id .. "/json", unix_socket = docker.socket })
  if r.status == 404 then return nil end
  return json.decode(r.body)
end

local prefix = string.format("moonbox-spec-%d-%d-", os.time(), math.random(1e6))
local function new(opts)
  local o = { image = docker.image, socket = docker.socket }
  for k, v in pairs(opts or {}) do o[k] = v end
  return moonbox.docker_sandbox(o)
end

describe("docker_sandbox", function()
  teardown(function() docker.remove_named(prefix) end)

  describe("lifecycle", function()
    it("creates the container lazily, with init, no-new-privileges, no network and the limits", function()
      local sb = new { memory = 64 * 1024 * 1024, cpus = 0.5, env = { GREETING = "hi there" },
        tmpfs = { ["/scratch"] = "size=1m" } }
      assert.is_nil(sb:container_id())
      assert.is_false(sb:is_alive())
      local r = assert(sb:execute("echo $GREETING; pwd"))
      assert.equal("hi there\n/workspace\n", r.output)
      assert.is_true(sb:is_alive())
      local info = assert(inspect(sb:container_id()))
      local hc = info.HostConfig
      assert.equal("none", hc.NetworkMode)
      assert.is_true(hc.Init)
      assert.same({ "no-new-privileges:true" }, hc.SecurityOpt)
      assert.equal(512, hc.PidsLimit)
      assert.equal(64 * 1024 * 1024, hc.Memory)
      assert.equal(5e8, hc.NanoCpus)
      assert.is_true(hc.AutoRemove)
      assert.equal("size=1m,exec", hc.Tmpfs["/scratch"])
      assert.same({ "sleep", "infinity" }, info.Config.Cmd)
      local id = sb:container_id()
      assert.is_true(sb:stop())
      assert.is_false(sb:is_alive())
      -- auto_remove: gone once stopped
      local deadline = moonbox.now() + 10
      while inspect(id) and moonbox.now() < deadline do moonbox.sleep(0.1) end
      assert.is_nil(inspect(id))
    end)

    it("reuses a running container by name, starts a stopped one, and purges", function()
      local name = prefix .. "named"
      local a = new { container_name = name }
      assert(a:start())
      local id = a:container_id()
      assert.is_false(inspect(id).HostConfig.AutoRemove) -- container_name implies keeping it
      assert(a:write("/kept.txt", "still here\n"))
      local b = new { container_name = name }
      assert(b:start())
      assert.equal(id, b:container_id())
      assert(a:stop())
      assert.is_false(inspect(id).State.Running)
      local c = new { container_name = name }
      assert.equal("still here\n", c:read_bytes("/kept.txt"))
      assert.equal(id, c:container_id())
      assert.is_true(c:is_alive())
      assert.is_true(c:stop { purge = true })
      assert.is_nil(inspect(id))
    end)

    it("mounts volumes: files written through the archive API and by commands land on the host", function()
      local dir, remove = require("spec.support.tmpdir").make()
      local sb = new { volumes = { [dir] = "/workspace" } }
      assert(sb:write("/from-api.txt", "api\n"))
      assert.equal(0, sb:execute("echo cmd > from-cmd.txt").exit_code)
      local function slurp(p)
        local f = assert(io.open(p))
        local d = f:read("a")
        f:close()
        return d
      end
      assert.equal("api\n", slurp(dir .. "/from-api.txt"))
      assert.equal("cmd\n", slurp(dir .. "/from-cmd.txt"))
      local f = assert(io.open(dir .. "/from-host.txt", "w"))
      f:write("host\n")
      f:close()
      assert.equal("     1\thost", sb:read("/from-host.txt"))
      sb:stop { purge = true }
      remove()
    end)

    it("carries the daemon's message and status for an API error", function()
      local sb = new { image = "moonbox-test/no-such-image:1" }
      local ok, msg, code = sb:start()
      assert.is_nil(ok)
      assert.equal("NOT_FOUND", code)
      assert.matches("No such image", msg)
      assert.matches("HTTP 404", msg)
    end)

    it("notices a container removed behind its back", function()
      local sb = new()
      assert(sb:start())
      assert(http.request { url = API .. "/containers/" .. sb:container_id() .. "?force=1", method = "DELETE",
        unix_socket = docker.socket })
      assert.is_false(sb:is_alive())
      local r, msg, code = sb:execute("true")
      assert.is_nil(r)
      assert.is_string(msg)
      assert.equal("NOT_FOUND", code)
    end)
  end)

  describe("execute", function()
    local sb
    setup(function() sb = new { container_name = prefix .. "exec", max_output = 1000 } end)
    teardown(function() sb:stop { purge = true } end)

    it("gives the local sandbox's result shape", function()
      local r = assert(sb:execute("echo out; echo err >&2; exit 3"))
      assert.equal("out\n", r.stdout)
      assert.equal("err\n", r.stderr)
      assert.is_true(r.output == "out\nerr\n" or r.output == "err\nout\n", r.output)
      assert.equal(3, r.exit_code)
      assert.is_false(r.truncated)
      assert.is_false(r.timed_out)
      assert.is_number(r.duration)
      assert.equal(0, sb:execute("true").exit_code)
      assert.equal(137, sb:execute("kill -9 $$").exit_code)
    end)

    it("runs in work_dir, or cwd below it, with extra env", function()
      assert(sb:execute("mkdir -p sub/dir"))
      assert.equal("/workspace/sub/dir\n", sb:execute("pwd", { cwd = "sub/dir" }).output)
      assert.equal("/workspace/sub\n", sb:execute("pwd", { cwd = "/sub" }).output)
      assert.equal("v a l\n", sb:execute("echo $X", { env = { X = "v a l" } }).output)
      local r, msg, code = sb:execute("true", { cwd = "../etc" })
      assert.is_nil(r)
      assert.equal("INVALID", code, msg)
    end)

    it("keeps output bounded: the head, a marker and the tail", function()
      local r = assert(sb:execute("i=0; while [ $i -lt 3000 ]; do echo line$i; i=$((i+1)); done"))
      assert.is_true(r.truncated)
      assert.is_true(#r.stdout < 1200)
      assert.matches("^line0\n", r.stdout)
      assert.matches("bytes of output dropped", r.stdout)
      assert.matches("line2999\n$", r.stdout)
      assert.equal(0, r.exit_code)
    end)

    it("times out from the host: exit 124, the partial output, and every process of it killed", function()
      local t0 = moonbox.now()
      local r = assert(sb:execute("sleep 301 & (sleep 302 &); echo started; sleep 303", { timeout = 1 }))
      assert.is_true(moonbox.now() - t0 < 5)
      assert.equal(124, r.exit_code)
      assert.is_true(r.timed_out)
      assert.equal("started\n", r.output)
      local ps = sb:execute("ps -o args").output
      assert.is_nil(ps:find("sleep 30", 1, true), ps)
    end)

    it("refuses a NUL byte and raises for misuse", function()
      local r, _, code = sb:execute("echo a\0b")
      assert.is_nil(r)
      assert.equal("INVALID", code)
      assert.has_error(function() sb:execute(42) end)
      assert.has_error(function() sb:execute("true", { bogus = 1 }) end)
    end)

    it("cancels a running command: its processes inside the container are killed", function()
      local t = moonbox.spawn(function() return sb:execute("sleep 321 & sleep 322") end)
      local deadline = moonbox.now() + 10
      repeat moonbox.sleep(0.05) until sb:execute("ps -o args").output:find("sleep 322", 1, true)
        or moonbox.now() > deadline
      assert.is_true(t:cancel())
      local ps
      repeat
        moonbox.sleep(0.05)
        ps = sb:execute("ps -o args").output
      until not ps:find("sleep 32", 1, true) or moonbox.now() > deadline
      assert.is_nil(ps:find("sleep 32", 1, true), ps)
    end)

    it("blocks outside a task (a plain coroutine) and still gives the result", function()
      local co = coroutine.wrap(function() return sb:execute("echo from coroutine").output end)
      assert.equal("from coroutine\n", co())
    end)
  end)

  describe("files", function()
    it("replaces a file by rename: a reader holding it open keeps the old bytes, no temp file is left", function()
      local sb = new { container_name = prefix .. "atomic" }
      assert(sb:write("/dir/a.txt", "old\n"))
      -- a reader that opened the old file keeps reading it; a rename never truncates it in place
      local bg = assert(sb:spawn("exec 3</workspace/dir/a.txt; sleep 0.5; cat <&3"))
      moonbox.sleep(0.2)
      assert(sb:write("/dir/a.txt", "new\n"))
      assert(sb:edit("/dir/a.txt", "new", "newer"))
      local out = ""
      local deadline = moonbox.now() + 10
      repeat
        local r = assert(sb:read_output(bg))
        out = out .. r.output
        if not r.running then break end
        moonbox.sleep(0.05)
      until moonbox.now() > deadline
      assert.equal("old\n", out)
      assert.equal("newer\n", sb:read_bytes("/dir/a.txt"))
      local ls = assert(sb:execute("ls -a /workspace/dir"))
      assert.equal(".\n..\na.txt\n", ls.output)
      sb:stop { purge = true }
    end)
  end)

  describe("background processes", function()
    local sb
    setup(function() sb = new { container_name = prefix .. "bg" } end)
    teardown(function() sb:stop { purge = true } end)

    it("numbers them bg_1, bg_2, reads only new output and reports the exit code", function()
      local id = sb:spawn("echo one; sleep 2; echo two; exit 4")
      assert.equal("bg_1", id)
      assert.equal("bg_2", sb:spawn("true"))
      local deadline = moonbox.now() + 10
      local first
      repeat
        moonbox.sleep(0.02)
        first = sb:read_output(id)
      until first.output ~= "" or moonbox.now() > deadline
      assert.equal("one\n", first.output)
      assert.is_true(first.running)
      assert.is_nil(first.exit_code)
      -- collect every read until the exit: a read may take "two" before the exit code is known
      local last
      local rest = {}
      repeat
        moonbox.sleep(0.05)
        last = sb:read_output(id)
        rest[#rest + 1] = last.output
      until not last.running or moonbox.now() > deadline
      assert.equal("two\n", table.concat(rest))
      assert.is_false(last.running)
      assert.equal(4, last.exit_code)
      assert.equal("", sb:read_output(id).output)
      local r, msg, code = sb:read_output("bg_99")
      assert.is_nil(r)
      assert.equal("NOT_FOUND", code)
      assert.equal("No such background process: bg_99", msg)
    end)

    it("lists them and kills one with its children", function()
      local a = sb:spawn("exit 7")
      local b = sb:spawn("sleep 311 & sleep 312")
      local deadline = moonbox.now() + 10
      local list
      repeat
        moonbox.sleep(0.05)
        list = sb:list()
      until not list[#list - 1].running or moonbox.now() > deadline
      local by = {}
      for _, p in ipairs(list) do by[p.id] = p end
      assert.is_false(by[a].running)
      assert.equal(7, by[a].exit_code)
      assert.is_true(by[b].running)
      assert.equal("sleep 311 & sleep 312", by[b].command)
      assert.is_true(sb:kill(b))
      assert.is_false(sb:kill(b))
      local ps = sb:execute("ps -o args").output
      assert.is_nil(ps:find("sleep 31", 1, true), ps)
      assert.is_false(sb:kill("bg_404"))
    end)
  end)

  describe("tasks", function()
    it("runs commands in 20 containers from 20 tasks at once", function()
      local t0 = moonbox.now()
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = moonbox.spawn(function()
          local sb = new { container_name = prefix .. "many-" .. i }
          local r, msg, code = sb:execute("sleep 1; echo " .. i)
          local w = sb:write("/n.txt", tostring(i))
          local back = sb:read_bytes("/n.txt")
          sb:stop { purge = true }
          return r, msg, code, w, back
        end)
      end
      for i, t in ipairs(tasks) do
        local r, msg, _, w, back = t:join()
        assert(r, msg)
        assert.equal(i .. "\n", r.output)
        assert.is_table(w)
        assert.equal(tostring(i), back)
      end
      local dt = moonbox.now() - t0
      -- serially the sleeps alone take 20 s
      assert.is_true(dt < 15, "20 containers took " .. dt .. " s")
    end)
  end)

  describe("runtimes", function()
    it("builds a runtime image through POST /build once, then reuses its tag", function()
      local rt = {
        name = "moonbox-spec", base_image = docker.image, package_manager = "apt",
        setup_commands = { "echo built-by-moonbox > /etc/built" }, env_vars = { FROM_RUNTIME = "yes" },
        work_dir = "/srv/app",
      }
      local tag = moonbox.runtimes.image_tag(rt)
      http.request { url = API .. "/images/" .. tag .. "?force=1", method = "DELETE", unix_socket = docker.socket }
      local built = assert(require("moonbox.docker_sandbox").build_runtime_image(rt, { socket = docker.socket }))
      assert.equal(tag, built)
      local image = json.decode(http.request { url = API .. "/images/" .. tag .. "/json",
        unix_socket = docker.socket }.body)
      local sb = new { runtime = rt }
      local r = assert(sb:execute("cat /etc/built; echo $FROM_RUNTIME; pwd"))
      assert.equal("built-by-moonbox\nyes\n/srv/app\n", r.output)
      assert(sb:write("/f.txt", "in the runtime's work_dir"))
      assert.equal("in the runtime's work_dir", sb:execute("cat /srv/app/f.txt").output)
      sb:stop { purge = true }
      -- the second time the tag exists: no build, the same image
      assert.equal(tag, require("moonbox.docker_sandbox").build_runtime_image(rt, { socket = docker.socket }))
      local again = json.decode(http.request { url = API .. "/images/" .. tag .. "/json",
        unix_socket = docker.socket }.body)
      assert.equal(image.Id, again.Id)
      http.request { url = API .. "/images/" .. tag .. "?force=1", method = "DELETE", unix_socket = docker.socket }
    end)

    it("reports a failing build step with the daemon's error", function()
      local rt = { name = "moonbox-spec-broken", base_image = docker.image, setup_commands = { "exit 3" } }
      local ok, msg, code = require("moonbox.docker_sandbox").build_runtime_image(rt, { socket = docker.socket })
      assert.is_nil(ok)
      assert.equal("BUILD_FAILED", code)
      assert.matches("exit 3", msg)
    end)
  end)
end)
