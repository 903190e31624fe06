-- namespace_sandbox: commands in user/mount/pid/ipc/uts/net namespaces under seccomp, and the
-- escapes that must stay contained while this process — the host — keeps running. Each escape
-- has a control that shows the same attempt works where it should (from the host, or with
-- network = true), so a refusal is the sandbox's doing and not a broken test tool.
local moonbox = require "moonbox"
local nsb = require "moonbox.namespace_sandbox"
local native = require "moonbox.namespace"
local tmp = require "spec.support.tmpdir"

local q = tmp.sh_quote

local helper = assert(native.helper())
local bindir = helper:match("^(.*)/[^/]+$")
local probe = bindir .. "/moonbox-escape-probe"

local sh = tmp.run
local slurp = tmp.read
local spit = tmp.write

local function host(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  p:close()
  return s
end

local function wait_for(path)
  for _ = 1, 1500 do -- 15 s at least: a busy machine is slow to start a namespace
    local s = slurp(path)
    if s and s:find("\n") then return s end
    moonbox.sleep(0.01)
  end
  error("timed out waiting for " .. path)
end

-- The host's processes: pid -> { ppid, state, cmd } (cmd: argv joined by spaces).
local function processes()
  local t = {}
  for pid in host("ls /proc"):gmatch("%d+") do
    local status, cmdline = slurp("/proc/" .. pid .. "/status"), slurp("/proc/" .. pid .. "/cmdline")
    if status and cmdline then
      t[pid] = { ppid = status:match("PPid:%s*(%d+)"), state = status:match("State:%s*(%a)"),
        cmd = cmdline:gsub("%z", " ") }
    end
  end
  return t
end

-- Host pids of what the sandbox's commands run: live processes below one of its helpers
-- (moonbox-nsexec --join <its holder>), the spare waiting for the next command excepted. The
-- helpers themselves (runner, keeper, init) are not counted: they run nothing of the command's.
local function inside_pids(sb)
  local token = "--join " .. sb._ns.holder:token() .. " "
  local spare = sb._ns.spare and tostring(sb._ns.spare:pid())
  local t = processes()
  local pids = {}
  for pid, p in pairs(t) do
    if p.state ~= "Z" and not p.cmd:find(token, 1, true) then
      local top, up, hops = nil, p.ppid, 0
      while up and t[up] and hops < 64 do -- the topmost helper above it
        if t[up].cmd:find(token, 1, true) then top = up end
        up, hops = t[up].ppid, hops + 1
      end
      if top and top ~= spare then pids[#pids + 1] = pid end
    end
  end
  return pids
end

local function wait_for_file(path)
  for _ = 1, 1500 do -- 15 s at least: a busy machine is slow to start a namespace
    if slurp(path) then return true end
    moonbox.sleep(0.01)
  end
  error("timed out waiting for " .. path)
end

local function alive(pid) return slurp("/proc/" .. pid .. "/stat") ~= nil end

-- A host listener on 127.0.0.1: returns port, a function reporting whether it accepted, and a
-- cleanup.
local function listener(dir, name)
  local portfile, out = dir .. "/" .. name .. ".port", dir .. "/" .. name .. ".out"
  local pid = host(q(probe) .. " listen " .. q(portfile) .. " > " .. q(out) ..
    " 2>&1 & echo $!"):match("%d+")
  local port = wait_for(portfile):match("%d+")
  -- accepted(patience): whether it accepted a connection, polling up to `patience` seconds
  return port, function(patience)
    for _ = 1, math.max(1, math.floor(patience * 100)) do
      if (slurp(out) or ""):find("accepted") then return true end
      moonbox.sleep(0.01)
    end
    return false
  end, function() os.execute("kill " .. pid .. " 2>/dev/null") end
end

describe("namespace_sandbox", function()
  local root, cleanup, sb, scratch, scratch_cleanup

  setup(function()
    root, cleanup = tmp.make()
    scratch, scratch_cleanup = tmp.make()
    spit(root .. "/hello.txt", "hello from the host\n")
    sb = nsb.new{ root = root, readonly = { bindir } }
    local ok, msg = sb:start()
    assert(ok, msg)
  end)

  teardown(function()
    sb:stop()
    cleanup()
    scratch_cleanup()
  end)

  describe("runs commands", function()
    it("as the sandbox user in /workspace, on the host's files", function()
      local r = sb:execute("id -un; id -u; pwd; cat hello.txt; echo made > made.txt")
      assert.are.equal(0, r.exit_code)
      assert.are.equal("sandbox\n1000\n/workspace\nhello from the host\n", r.output)
      assert.are.equal("made\n", slurp(root .. "/made.txt"))
      assert.are.equal("made\n", sb:read_bytes("/made.txt")) -- the same root for file ops
    end)

    it("propagates exit statuses exactly, signals as 128+n", function()
      assert.are.equal(7, sb:execute("exit 7").exit_code)
      assert.are.equal(143, sb:execute("kill -TERM $$").exit_code)
      assert.are.equal(127, sb:execute("no-such-command-here").exit_code)
    end)

    it("in fresh pid and uts namespaces, with the sandbox's own /proc", function()
      local r = sb:execute("echo $$; hostname; ls /proc | grep -c '^[0-9]'")
      local pid, name, count = r.output:match("^(%d+)\n(%S+)\n(%d+)\n$")
      assert.are.equal("2", pid) -- pid 1 is the namespace's init
      assert.are.equal("moonbox", name)
      assert.is_true(tonumber(count) < 6, r.output)
    end)

    it("never with the host's environment", function()
      local r = sb:execute("env")
      assert.matches("HOME=/workspace", r.output)
      assert.is_nil(r.output:find("MOONBOX_", 1, true))
      local with = nsb.new{ root = root, env = { GREETING = "hi" } }
      assert.are.equal("hi\n", with:execute("echo $GREETING").output)
      assert.are.equal("hi there\n",
        with:execute("echo $GREETING $WHO", { env = { WHO = "there" } }).output)
      assert.are.equal("unset\n", -- false unsets a variable for that call
        with:execute("echo ${GREETING-unset}", { env = { GREETING = false } }).output)
      with:stop()
    end)

    it("with the local sandbox's result shape, stdout and stderr apart", function()
      local r = sb:execute("echo out; echo err >&2; exit 3")
      assert.are.equal(3, r.exit_code)
      assert.are.equal("out\n", r.stdout)
      assert.are.equal("err\n", r.stderr)
      assert.is_false(r.timed_out)
      assert.is_false(r.truncated)
      assert.is_number(r.duration)
    end)

    it("in a cwd under /workspace", function()
      sh("mkdir -p " .. q(root .. "/sub/dir"))
      assert.are.equal("/workspace/sub/dir\n", sb:execute("pwd", { cwd = "sub/dir" }).output)
      local r, _, code = sb:execute("pwd", { cwd = "../.." })
      assert.is_nil(r)
      assert.are.equal("EACCES", code)
    end)

    it("with extra read-only and writable host paths", function()
      local r = sb:execute("echo w > " .. q(scratch .. "/from-sandbox") .. "; echo x > " ..
        q(bindir .. "/nope") .. "; ls /work /srv 2>&1 | head -1")
      assert.matches("Read%-only file system", r.output)
      local rw = nsb.new{ root = root, writable = { scratch } }
      assert.are.equal(0, rw:execute("echo w > " .. q(scratch .. "/from-sandbox")).exit_code)
      rw:stop()
      assert.are.equal("w\n", slurp(scratch .. "/from-sandbox"))
      assert.is_nil(slurp(bindir .. "/nope"))
    end)

    it("caps output like the local sandbox", function()
      local small = nsb.new{ root = root, max_output = 1000 }
      local r = small:execute("head -c 200000 /dev/zero | tr '\\0' x")
      small:stop()
      assert.is_true(r.truncated)
      assert.is_true(#r.output < 2000)
    end)

    it("kills the whole namespace on timeout, grandchildren included", function()
      local t0 = moonbox.monotonic()
      local r = sb:execute("(sleep 60 & echo $! > pidfile; wait); sleep 60", { timeout = 1 })
      assert.is_true(r.timed_out)
      assert.are.equal(124, r.exit_code)
      assert.is_true(moonbox.monotonic() - t0 < 10)
      assert.matches("^%d+", slurp(root .. "/pidfile"))
      assert.are.same({}, inside_pids(sb))
    end)

    it("runs background processes and kills them", function()
      local id = assert(sb:spawn("echo start; sleep 30"))
      assert.matches("^bg_%d+$", id)
      local out = ""
      local deadline = moonbox.now() + 15 -- a busy machine may take seconds to start it
      repeat
        out = out .. (sb:read_output(id).output or "")
        if out:find("start") then break end
        moonbox.sleep(0.01)
      until moonbox.now() > deadline
      assert.matches("start", out)
      local listed = sb:list()
      assert.are.equal(id, listed[#listed].id)
      assert.is_true(listed[#listed].running)
      assert.is_true(#inside_pids(sb) > 0)
      assert.is_true(sb:kill(id))
      for _ = 1, 1500 do -- up to 15 s on a busy machine
        if #inside_pids(sb) == 0 then break end
        moonbox.sleep(0.01)
      end
      assert.are.same({}, inside_pids(sb))
    end)

    it("reports what it enforces", function()
      local caps = sb:capabilities()
      assert.are.same({ "user", "mount", "pid", "ipc", "uts", "net" }, caps.namespaces)
      assert.are.same(caps.namespaces, caps.per_command) -- none is shared between commands
      assert.is_true(caps.seccomp)
      assert.is_false(caps.network)
      assert.is_false(caps.pids) -- none asked for
      assert.is_false(caps.memory)
      assert.are.equal(1000, caps.uid)
      local limited = nsb.new{ root = root, memory = "64M", cpu_time = 30 }
      assert.is_true(limited:start())
      caps = limited:capabilities()
      assert.is_truthy(caps.memory:match("^cgroup v[12]$") or caps.memory:match("^rlimit"))
      assert.are.equal(30, caps.cpu_time)
      assert.matches("^30\n", limited:execute("ulimit -t").output)
      limited:stop()
    end)
  end)

  describe("keeps every command in namespaces of its own", function()
    local KINDS = { "user", "net", "ipc", "uts", "mnt", "pid" }
    local READLINKS = "for n in user net ipc uts mnt pid; do readlink /proc/self/ns/$n; done"

    local function inodes(output)
      local t = {}
      for kind, ino in output:gmatch("(%a+):%[(%d+)%]") do t[kind] = ino end
      return t
    end

    local function ids(output) -- moonbox-escape-probe nsids: "kind id" lines
      local t = {}
      for kind, id in output:gmatch("(%a+) (%S+)") do t[kind] = id end
      return t
    end

    -- the output of background process `id` once it contains `what` (a busy machine may take
    -- seconds to start it)
    local function bg_output(id, what)
      local out = ""
      local deadline = moonbox.now() + 15
      repeat
        out = out .. (sb:read_output(id).output or "")
        if out:find(what, 1, true) then return out end
        moonbox.sleep(0.01)
      until moonbox.now() > deadline
      error("background process never printed " .. what .. ": " .. out)
    end

    it("two commands in a row: new user, net, ipc, uts, mount and pid namespaces", function()
      local host_ids = ids(host(q(probe) .. " nsids"))
      local a = ids(sb:execute(q(probe) .. " nsids").output)
      local b = ids(sb:execute(q(probe) .. " nsids").output)
      local c = ids(sb:execute(q(probe) .. " nsids").output)
      for _, kind in ipairs(KINDS) do
        assert.is_string(a[kind], kind)
        assert.are_not.equal(host_ids[kind], a[kind], kind)
        -- ids from NS_GET_ID are never reused; inode numbers ("ino:") are recycled once a
        -- namespace is freed, so those are compared while both are alive (the next test)
        if not a[kind]:find("^ino:") then
          assert.are_not.equal(a[kind], b[kind], kind)
          assert.are_not.equal(b[kind], c[kind], kind)
          assert.are_not.equal(a[kind], c[kind], kind)
        end
      end
    end)

    it("a background process and concurrent commands: different namespace inodes", function()
      local id = assert(sb:spawn(READLINKS .. "; echo ready; sleep 30"))
      local bg = inodes(bg_output(id, "ready"))
      local a = inodes(sb:execute(READLINKS .. "; " .. READLINKS .. " >&2").output)
      local holder = sb._ns.holder:token():match("^(%d+)")
      local tmpl = inodes(host("for n in user mnt; do readlink /proc/" .. holder .. "/ns/$n; done"))
      local mine = inodes(host(READLINKS))
      for _, kind in ipairs(KINDS) do
        assert.is_string(bg[kind], kind)
        assert.are_not.equal(bg[kind], a[kind], kind)
        assert.are_not.equal(mine[kind], bg[kind], kind)
        assert.are_not.equal(mine[kind], a[kind], kind)
        if tmpl[kind] then -- the template's are copied, never joined
          assert.are_not.equal(tmpl[kind], bg[kind], kind)
          assert.are_not.equal(tmpl[kind], a[kind], kind)
        end
      end
      assert.is_true(sb:kill(id))
    end)

    it("hands each command to a spare; the next is made during it, or after it after a pause",
      function()
        local s = nsb.new{ root = root }
        assert.is_true(s:start())
        local first = assert(s._ns.spare) -- made after start's probe
        assert.are.equal(0, s:execute("true").exit_code) -- back to back: first is taken and the
        local second = assert(s._ns.spare) -- next spawned while the command runs
        assert.are_not.equal(first, second)
        -- used once and closed with its command: it can never be handed a second one
        assert.has_error(function() first:running() end)
        moonbox.sleep(0.02) -- a pause, as between an agent's model calls
        assert.are.equal(0, s:execute("true").exit_code)
        assert.is_nil(s._ns.spare) -- not made while the command ran...
        moonbox.sleep(0.01)
        local third = assert(s._ns.spare) -- ...but on the next turn of the loop
        assert.are_not.equal(second, third)
        s:stop()
        assert.is_nil(s._ns.spare)
      end)

    it("SysV IPC objects one command makes are gone for the next", function()
      if not host("command -v ipcmk && command -v ipcs"):find("ipcs") then
        return pending("no ipcmk/ipcs (util-linux) on this host")
      end
      local count = "ipcs -q -m | grep -c '^0x'"
      local r = sb:execute("ipcmk -Q > /dev/null && ipcmk -M 4096 > /dev/null && " .. count)
      assert.are.equal("2\n", r.output) -- a queue and a segment, visible inside that command
      assert.are.equal("0\n", sb:execute(count).output)
    end)

    it("an abstract unix socket a background process listens on is out of reach", function()
      local id = assert(sb:spawn(q(probe) .. " unix-listen moonbox-spec-ns"))
      bg_output(id, "listening")
      local r = sb:execute(q(probe) .. " unix-connect moonbox-spec-ns")
      assert.matches("connect: Connection refused", r.output)
      -- control: within one command (one network namespace) the same connection is made
      r = sb:execute(q(probe) .. " unix-listen moonbox-spec-same > /tmp/l & " ..
        "until grep -q listening /tmp/l; do sleep 0.01; done; " ..
        q(probe) .. " unix-connect moonbox-spec-same; wait; cat /tmp/l")
      assert.matches("^connected\n", r.output)
      assert.matches("accepted", r.output)
      sb:kill(id)
    end)
  end)

  describe("contains", function()
    it("reads of /etc/shadow and the host's home", function()
      local r = sb:execute("cat /etc/shadow; ls /root; ls /home; cat /proc/1/root/etc/shadow")
      assert.are_not.equal(0, r.exit_code)
      assert.matches("/etc/shadow: No such file", r.output)
      assert.matches("/root.*No such file", r.output)
      -- a symlink planted in the workspace resolves inside the sandbox, not on the host
      sh("ln -s /etc/shadow " .. q(root .. "/shadow") .. "; ln -s /root " .. q(root .. "/home"))
      r = sb:execute("cat shadow; ls home/")
      assert.are_not.equal(0, r.exit_code)
      assert.is_nil(r.output:find("root:", 1, true))
      if slurp("/etc/shadow") then -- control: the host (this test) can read it
        assert.matches("root:", slurp("/etc/shadow"))
      end
    end)

    it("writes outside /workspace", function()
      local name = "moonbox-escape-" .. tostring(os.time()) .. tostring(math.random(1e6))
      local r = sb:execute("for d in / /usr /etc /proc /dev /usr/bin; do echo x > $d/" .. name ..
        "; done; echo x > /proc/sys/kernel/domainname; echo x > /tmp/" .. name .. "; cat /tmp/" ..
        name .. "; " .. q(probe) .. " chmod /dev/null")
      assert.matches("Read%-only file system", r.output)
      assert.matches("chmod: Read%-only file system", r.output)
      for _, d in ipairs{ "/", "/usr", "/etc", "/usr/bin", "/tmp" } do
        assert.is_nil(slurp(d .. "/" .. name), d)
      end
      assert.are.equal("666", host("stat -c %a /dev/null"):match("%d+"))
    end)

    it("a TCP connection to a port the host listens on at 127.0.0.1", function()
      local port, accepted, stop = listener(scratch, "control")
      assert.matches("^connected", host(q(probe) .. " connect 127.0.0.1 " .. port))
      assert.is_true(accepted(5)) -- control: the port is really open to the host
      stop()
      local port2, accepted2, stop2 = listener(scratch, "escape")
      local r = sb:execute(q(probe) .. " connect 127.0.0.1 " .. port2)
      stop2()
      assert.matches("socket: Operation not permitted", r.output)
      assert.is_false(accepted2(0.2))
      -- control through a sandbox: with network = true the same attempt reaches it
      local port3, accepted3, stop3 = listener(scratch, "shared")
      local open = nsb.new{ root = root, readonly = { bindir }, network = true }
      local r3 = open:execute(q(probe) .. " connect 127.0.0.1 " .. port3)
      open:stop()
      local got = accepted3(5)
      stop3()
      assert.matches("^connected", r3.output)
      assert.is_true(got)
    end)

    it("other socket families, including with high bits set", function()
      for _, fam in ipairs{ "inet", "inet6", "packet", "vsock", "alg" } do
        assert.matches("socket: ", sb:execute(q(probe) .. " socket " .. fam).output, fam)
      end
      assert.matches("socket: Operation not permitted",
        sb:execute(q(probe) .. " socket-highbits").output)
      assert.matches("^created", sb:execute(q(probe) .. " socket unix").output)
    end)

    it("signals to a host pid", function()
      local pid = host("sleep 30 > /dev/null 2>&1 & echo $!"):match("%d+")
      local r = sb:execute("kill -9 " .. pid .. "; " .. q(probe) .. " kill " .. pid)
      assert.matches("kill: No such process", r.output)
      assert.is_true(alive(pid))
      os.execute("kill " .. pid)
    end)

    it("ptrace of a sibling", function()
      local r = sb:execute("sleep 5 & " .. q(probe) .. " ptrace $!; kill $!")
      assert.matches("ptrace: Operation not permitted", r.output)
    end)

    it("kernel interfaces the filter refuses", function()
      local r = sb:execute(q(probe) .. " denied")
      for _, call in ipairs{ "io_uring_setup", "bpf", "perf_event_open", "keyctl", "add_key",
        "userfaultfd", "setns", "open_by_handle_at" } do
        assert.matches(call .. ": Operation not permitted", r.output, call)
      end
      -- control: on the host the same calls fail for other reasons, or succeed
      local h = host(q(probe) .. " denied")
      assert.matches("setns: Bad file descriptor", h)
      assert.matches("perf_event_open: Bad address", h)
    end)

    it("new namespaces and mounts", function()
      local r = sb:execute(q(probe) .. " unshare; " .. q(probe) .. " mount")
      assert.matches("unshare: Operation not permitted", r.output)
      assert.matches("clone: Operation not permitted", r.output)
      assert.matches("mount: Operation not permitted", r.output)
    end)

    it("a fork bomb (pids limit) and the host keeps forking", function()
      local bomb = nsb.new{ root = root, pids = 24 }
      local ok, msg, code = bomb:start()
      if not ok then -- no writable pids cgroup and running as root: refused, never unlimited
        assert.are.equal("UNSUPPORTED", code)
        assert.matches("cannot be enforced", msg)
        return pending("pids cannot be enforced on this host: " .. msg)
      end
      -- 60 processes where 24 are allowed: the kernel refuses the 25th fork (dash gives up)
      local r = bomb:execute("for i in $(seq 60); do sleep 5 & done; echo all started")
      assert.matches("Cannot fork", r.output)
      assert.is_nil(r.output:find("all started", 1, true))
      assert.are_not.equal(0, r.exit_code)
      -- the classic bomb: it fills the limit, then the shell itself may find no slot to fork
      -- `sleep` (dash gives up) — either way the command ends and everything it made is killed
      r = bomb:execute("b() { b | b & }; b; sleep 1; echo done", { timeout = 20 })
      assert.is_false(r.timed_out)
      assert.is_truthy(r.output:find("done", 1, true) or r.output:find("Cannot fork", 1, true))
      assert.are.equal("ok\n", host("echo ok"))
      assert.are.equal(0, bomb:execute("true").exit_code) -- and the sandbox recovers
      bomb:stop()
    end)

    it("a memory bomb (memory limit)", function()
      local hog = nsb.new{ root = root, memory = "48M" }
      local r = hog:execute("x=$(head -c 150000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
        { timeout = 60 })
      assert.is_nil(r.output:find("survived 150000000", 1, true), r.output)
      assert.are.equal(0, hog:execute("true").exit_code)
      hog:stop()
    end)
  end)

  describe("in tasks", function()
    it("runs 20 commands at once in one process", function()
      local wide = nsb.new{ root = root }
      local t0 = moonbox.now()
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = moonbox.spawn(function() return wide:execute("sleep 1; echo " .. i) end)
      end
      for i, t in ipairs(tasks) do assert.are.equal(i .. "\n", t:join().output) end
      wide:stop()
      local dt = moonbox.now() - t0
      -- serial: 20 s; at once: about 1 s, with room for a busy 2-core machine setting up 20
      -- namespaces (0.3 s commands against a 5 s limit left too little)
      assert.is_true(dt < 10, "20 x 1 s commands took " .. dt .. " s")
    end)

    it("cancels a running command: its whole namespace is gone", function()
      os.remove(root .. "/started")
      local t = moonbox.spawn(function() return sb:execute("sleep 60 & touch started; wait") end)
      wait_for_file(root .. "/started")
      assert.is_true(#inside_pids(sb) > 0)
      assert.is_true(t:cancel())
      for _ = 1, 1500 do -- up to 15 s on a busy machine
        if #inside_pids(sb) == 0 then break end
        moonbox.sleep(0.01)
      end
      assert.are.same({}, inside_pids(sb))
    end)
  end)

  describe("fails closed", function()
    it("where user namespaces are refused: start and every call say UNSUPPORTED", function()
      local off = nsb.new{ root = root, simulate_unsupported = true }
      local ok, msg, code = off:start()
      assert.is_nil(ok)
      assert.are.equal("UNSUPPORTED", code)
      assert.matches("user namespaces are unavailable", msg)
      local r, msg2, code2 = off:execute("touch /workspace/ran")
      assert.is_nil(r)
      assert.are.equal("UNSUPPORTED", code2)
      assert.are.equal(msg, msg2)
      assert.is_nil(slurp(root .. "/ran")) -- nothing ran, confined or not
      assert.is_false(off:is_alive())
      assert.are.equal(msg, off:capabilities().unsupported)
      off:stop()
    end)

    it("when the holder is gone", function()
      local gone = nsb.new{ root = root }
      assert.is_true(gone:start())
      local pid = gone._ns.holder:token():match("^(%d+)")
      os.execute("kill -9 " .. pid)
      -- while it dies a command either still joins its (confined) namespaces or is refused by
      -- the helper; it never runs anywhere else
      local early = gone:execute("id -u; cat /proc/1/cmdline | tr '\\0' ' '")
      if early and early.exit_code == 0 then
        assert.matches("^1000\n.*moonbox%-nsexec %-%-join", early.output)
      end
      for _ = 1, 1500 do -- up to 15 s on a busy machine
        if not gone:is_alive() then break end
        moonbox.sleep(0.01)
      end
      local r, msg, code = gone:execute("echo should-not-run")
      assert.is_nil(r)
      assert.are.equal("CLOSED", code)
      assert.matches("holder process has died", msg)
      gone:stop()
    end)
  end)

  describe("options", function()
    it("parses sizes", function()
      assert.are.equal(512 * 1024 * 1024, nsb.parse_size("512M"))
      assert.are.equal(1536, nsb.parse_size("1.5k"))
      assert.are.equal(2 * 1024 ^ 3, nsb.parse_size("2GiB"))
      assert.are.equal(4096, nsb.parse_size(4096))
    end)

    it("raises on misuse", function()
      assert.has_error(function() nsb.new{ root = root, colour = "red" } end)
      assert.has_error(function() nsb.new{ root = "relative" } end)
      assert.has_error(function() nsb.new{ root = root, memory = "12Q" } end)
      assert.has_error(function() nsb.new{ root = root, readonly = { "../x" } } end)
      assert.has_error(function() nsb.new{ root = root, pids = -1 } end)
      assert.has_error(function() sb:execute(42) end)
      assert.has_error(function() sb:execute("true", { env = { A = "x\0y" } }) end)
      assert.has_error(function() sb:execute("true", { env = { ["A=B"] = "x" } }) end)
    end)

    it("is registered as moonbox.namespace_sandbox", function()
      local via = moonbox.namespace_sandbox{ root = root }
      assert.are.equal(0, via:execute("true").exit_code)
      via:stop()
    end)
  end)

  it("leaves nothing running after stop", function()
    local s = nsb.new{ root = root }
    assert.is_true(s:start())
    local holder = s._ns.holder:token():match("^(%d+)")
    local spare = tostring(s._ns.spare:pid()) -- the next command's helper, waiting
    assert.is_true(alive(spare))
    s:stop()
    assert.is_false(alive(holder))
    assert.is_false(alive(spare))
    assert.is_false(s:is_alive())
  end)

  it("kills what a command leaves behind when it ends", function()
    sb:execute("sleep 30 > /dev/null 2>&1 &")
    assert.are.same({}, inside_pids(sb))
  end)
end)
