-- moonbox.kubernetes_sandbox: configuration, pod spec, lifecycle, exec and background processes,
-- against the FAKE Kubernetes API server (spec/support/fake_k8s.mjs). No real cluster is used.
local moonbox = require "moonbox"
local k8s = require "moonbox.kubernetes"
local codec = require "moonbox.codec"
local fake_k8s = require "spec.support.fake_k8s"
local tmpdir = require "spec.support.tmpdir"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local CERT = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
local KEY = "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n"

describe("kubernetes config", function()
  local dir, rm
  before_each(function() dir, rm = tmpdir.make() end)
  after_each(function() rm() end)

  it("reads a kubeconfig with a token and the current context", function()
    write(dir .. "/config", table.concat({
      "apiVersion: v1",
      "# a comment",
      "clusters:",
      "- name: other",
      "  cluster:",
      "    server: https://other:6443",
      "- name: prod",
      "  cluster:",
      "    server: 'https://10.0.0.1:6443/'",
      "    certificate-authority-data: " .. codec.base64_encode(CERT),
      "contexts:",
      "- name: a",
      "  context: {cluster: other}",
      "- name: b",
      "  context:",
      "    cluster: prod",
      "    user: \"admin\"",
      "    namespace: team-x",
      "current-context: b",
      "preferences: {}",
      "users:",
      "- name: admin",
      "  user:",
      "    token: abc.def  # trailing comment",
    }, "\n"))
    local cfg = assert(k8s.load_config { kubeconfig = dir .. "/config" })
    assert.equal("https://10.0.0.1:6443", cfg.server)
    assert.equal("abc.def", cfg.token)
    assert.equal(CERT, cfg.ca_data)
    assert.equal("team-x", cfg.namespace)
    assert.is_true(cfg.verify)
    assert.is_nil(cfg.client_cert)
  end)

  it("reads client certificate and key data, and files relative to the kubeconfig", function()
    write(dir .. "/ca.pem", CERT)
    write(dir .. "/key.pem", KEY)
    write(dir .. "/config", table.concat({
      "clusters:",
      "- cluster:",
      "    server: https://k:443",
      "    certificate-authority: ca.pem",
      "    insecure-skip-tls-verify: true",
      "  name: c",
      "contexts:",
      "- context:",
      "    cluster: c",
      "    user: u",
      "  name: x",
      "- context:",
      "    cluster: c",
      "    user: v",
      "  name: y",
      "current-context: x",
      "users:",
      "- name: u",
      "  user:",
      "    client-certificate-data: " .. codec.base64_encode(CERT),
      "    client-key-data: " .. codec.base64_encode(KEY),
      "- name: v",
      "  user:",
      "    client-certificate-data: " .. codec.base64_encode(CERT),
      "    client-key: key.pem",
    }, "\n"))
    local cfg = assert(k8s.load_config { kubeconfig = dir .. "/config" })
    assert.equal(CERT, cfg.client_cert)
    assert.equal(KEY, cfg.client_key)
    assert.equal(dir .. "/ca.pem", cfg.ca_file)
    assert.is_false(cfg.verify)
    assert.is_nil(cfg.token)
    local other = assert(k8s.load_config { kubeconfig = dir .. "/config", context = "y" })
    assert.equal(KEY, other.client_key)
  end)

  it("reads a JSON kubeconfig", function()
    write(dir .. "/config", [[{"clusters":[{"name":"c","cluster":{"server":"http://127.0.0.1:1"}}],
      "users":[{"name":"u","user":{"token":"t"}}],
      "contexts":[{"name":"x","context":{"cluster":"c","user":"u"}}],"current-context":"x"}]])
    local cfg = assert(k8s.load_config { kubeconfig = dir .. "/config" })
    assert.equal("http://127.0.0.1:1", cfg.server)
    assert.equal("t", cfg.token)
  end)

  it("uses the in-cluster service account (token, ca.crt, namespace, service host and port)", function()
    write(dir .. "/token", "sa-token\n")
    write(dir .. "/ca.crt", CERT)
    write(dir .. "/namespace", "jobs\n")
    local env = { KUBERNETES_SERVICE_HOST = "10.96.0.1", KUBERNETES_SERVICE_PORT = "443" }
    -- the token file's presence alone selects in-cluster auth
    local cfg = assert(k8s.load_config { service_account_dir = dir, env = env })
    assert.equal("https://10.96.0.1:443", cfg.server)
    assert.equal("sa-token", cfg.token)
    assert.equal(dir .. "/ca.crt", cfg.ca_file)
    assert.equal("jobs", cfg.namespace)
    env.KUBERNETES_SERVICE_HOST = "fd00::1"
    assert.equal("https://[fd00::1]:443", k8s.load_config { service_account_dir = dir, env = env }.server)
    local r, msg, code = k8s.load_config { in_cluster = true, service_account_dir = dir, env = {} }
    assert.is_nil(r)
    assert.equal("CONFIG", code)
    assert.matches("^failed to load kubernetes config: in%-cluster: KUBERNETES_SERVICE_HOST", msg)
  end)

  it("fails with CONFIG and says why", function()
    local r, msg, code = k8s.load_config { kubeconfig = dir .. "/missing" }
    assert.is_nil(r)
    assert.equal("CONFIG", code)
    assert.matches("failed to load kubernetes config: cannot read kubeconfig", msg, 1, true)
    write(dir .. "/config", "clusters: []\ncontexts: []\ncurrent-context: nope\n")
    r, msg = k8s.load_config { kubeconfig = dir .. "/config" }
    assert.is_nil(r)
    assert.matches("context 'nope' not found", msg, 1, true)
    write(dir .. "/config", table.concat({
      "clusters:", "- name: c", "  cluster:", "    server: https://x", "contexts:", "- name: x", "  context:",
      "    cluster: c", "    user: u", "current-context: x", "users:", "- name: u", "  user:", "    exec:",
      "      command: aws",
    }, "\n"))
    r, msg = k8s.load_config { kubeconfig = dir .. "/config" }
    assert.is_nil(r)
    assert.matches("exec/auth-provider plugin", msg, 1, true)
    r, msg = k8s.load_config { kubeconfig = dir .. "/missing", in_cluster = false }
    assert.is_nil(r)
    assert.matches("^failed to load kubernetes config", msg)
    local sb, smsg, scode = moonbox.kubernetes_sandbox { image = "x", kubeconfig = dir .. "/missing" }
    assert.is_nil(sb)
    assert.equal("CONFIG", scode)
    assert.matches("failed to load kubernetes config", smsg, 1, true)
  end)
end)

describe("kubernetes pod spec", function()
  it("names pods as the reference does (DNS-1123, at most 63 characters)", function()
    assert.equal("pab-sandbox-abc-def-1", k8s.pod_name("ABC_def.1"))
    assert.equal("pab-sandbox-x", k8s.pod_name("x--"))
    local long = k8s.pod_name(string.rep("a", 100))
    assert.equal(63, #long)
    assert.matches("^[a-z0-9][a-z0-9%-]*[a-z0-9]$", k8s.pod_name("a" .. string.rep("-", 60) .. "b"))
  end)

  it("has the reference defaults", function()
    local pod = k8s.pod_spec { id = "s1", name = "pab-sandbox-s1", namespace = "ns", image = "img:1", mode = "api",
      port = 8080, exec_token = "tok", env = { FOO = "bar" }, labels = { team = "x" },
      service_account_name = "default" }
    assert.equal("Pod", pod.kind)
    assert.same({ name = "pab-sandbox-s1", namespace = "ns",
      labels = { app = "pab-sandbox", ["pab-sandbox-id"] = "s1", team = "x" } }, pod.metadata)
    local spec = pod.spec
    assert.equal("Never", spec.restartPolicy)
    assert.is_false(spec.automountServiceAccountToken)
    assert.is_false(spec.enableServiceLinks)
    assert.same({ runAsNonRoot = true, runAsUser = 1000, runAsGroup = 1000, fsGroup = 1000,
      seccompProfile = { type = "RuntimeDefault" } }, spec.securityContext)
    local c = spec.containers[1]
    assert.equal("sandbox", c.name)
    assert.equal("img:1", c.image)
    assert.equal("IfNotPresent", c.imagePullPolicy)
    assert.same({ allowPrivilegeEscalation = false, readOnlyRootFilesystem = true,
      capabilities = { drop = { "ALL" } } }, c.securityContext)
    assert.same({ requests = { memory = "256Mi", cpu = "100m" }, limits = { memory = "768Mi", cpu = "1" } },
      c.resources)
    assert.same({ { name = "SANDBOX_EXEC_TOKEN", value = "tok" }, { name = "SANDBOX_PORT", value = "8080" },
      { name = "PYTHONUNBUFFERED", value = "1" }, { name = "FOO", value = "bar" } }, c.env)
    assert.same({ { name = "workspace", mountPath = "/workspace" }, { name = "tmp", mountPath = "/tmp" } },
      c.volumeMounts)
    assert.same({ { name = "workspace", emptyDir = { sizeLimit = "1Gi" } },
      { name = "tmp", emptyDir = { sizeLimit = "256Mi" } } }, spec.volumes)
    assert.is_nil(c.readinessProbe)
    local hp = k8s.pod_spec { id = "s1", name = "n", namespace = "ns", image = "i", mode = "http", port = 9000,
      exec_token = "t", service_account_name = "default" }
    assert.same({ { name = "exec", containerPort = 9000 } }, hp.spec.containers[1].ports)
    assert.same({ httpGet = { path = "/health", port = "exec" }, initialDelaySeconds = 1, periodSeconds = 2,
      failureThreshold = 5 }, hp.spec.containers[1].readinessProbe)
  end)

  it("fills only the required fields into a pod_template", function()
    local template = { metadata = { annotations = { a = "1" } },
      spec = { nodeSelector = { pool = "gpu" }, containers = { { name = "sandbox", image = "base" } } } }
    local pod = k8s.pod_spec { id = "t", name = "pab-sandbox-t", namespace = "ns", image = "img", mode = "api",
      port = 8080, exec_token = "tok", pod_template = template, service_account_name = "default" }
    assert.equal("pab-sandbox-t", pod.metadata.name)
    assert.equal("1", pod.metadata.annotations.a)
    assert.equal("pab-sandbox", pod.metadata.labels.app)
    assert.same({ pool = "gpu" }, pod.spec.nodeSelector)
    assert.equal("img", pod.spec.containers[1].image)
    assert.equal("tok", pod.spec.containers[1].env[1].value)
    assert.is_nil(template.metadata.name) -- deep-copied
  end)
end)

describe("kubernetes_sandbox against the fake API server", function()
  local fake
  setup(function() fake = fake_k8s.start() end)
  teardown(function() fake.stop() end)
  before_each(function() fake.configure { readyAfter = 300, phase = false } end)

  local function sandbox(extra)
    local o = { image = "fake-image", kubeconfig = fake.kubeconfig }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(moonbox.kubernetes_sandbox(o))
  end

  it("creates the pod, waits until Ready, and deletes it on stop", function()
    local sb = sandbox { sandbox_id = "Life-1", env = { A = "1" } }
    assert.equal("pab-sandbox-life-1", sb.pod_name)
    assert.equal("sandboxes", sb.namespace) -- from the kubeconfig's context
    assert.is_false(sb:is_alive())
    local t0 = moonbox.now()
    assert.is_true(sb:start())
    assert.is_true(moonbox.now() - t0 >= 0.25, "start returned before the pod was Ready")
    assert.is_true(sb:is_alive())
    local st = fake.state()
    assert.equal(1, #st.pods)
    local pod = st.pods[1]
    assert.equal("pab-sandbox-life-1", pod.metadata.name)
    assert.equal("fake-image", pod.spec.containers[1].image)
    assert.is_false(pod.spec.automountServiceAccountToken)
    assert.same({ "ALL" }, pod.spec.containers[1].securityContext.capabilities.drop)
    assert.is_true(sb:stop())
    st = fake.state()
    assert.equal(0, #st.pods)
    assert.equal("pab-sandbox-life-1", st.deleted[#st.deleted])
    assert.same({ kind = "DeleteOptions", apiVersion = "v1", gracePeriodSeconds = 30,
      propagationPolicy = "Background" }, st.deleteBodies[#st.deleteBodies])
    assert.is_true(sb:stop()) -- idempotent
  end)

  it("deletes the pod when it is not Ready within startup_timeout", function()
    fake.configure { readyAfter = -1 }
    local sb = sandbox { sandbox_id = "slow", startup_timeout = 1 }
    local ok, msg, code = sb:start()
    assert.is_nil(ok)
    assert.equal("TIMEOUT", code)
    assert.matches("pod pab-sandbox-slow was not ready within 1 seconds (deleted)", msg, 1, true)
    local st = fake.state()
    assert.equal("pab-sandbox-slow", st.deleted[#st.deleted])
    assert.equal(0, #st.pods)
  end)

  it("deletes the pod when it fails before Ready", function()
    fake.configure { phase = "Failed" }
    local sb = sandbox { sandbox_id = "bad" }
    local ok, msg, code = sb:start()
    assert.is_nil(ok)
    assert.equal("STARTUP", code)
    assert.matches("ended in phase Failed", msg, 1, true)
    assert.equal("pab-sandbox-bad", fake.state().deleted[#fake.state().deleted])
  end)

  it("is refused with a wrong token (AUTH) and creates nothing", function()
    local path = fake.dir .. "/wrong"
    fake_k8s.write_kubeconfig(path, fake.url, "not-the-token")
    local sb = assert(moonbox.kubernetes_sandbox { image = "x", kubeconfig = path })
    local ok, msg, code = sb:start()
    assert.is_nil(ok)
    assert.equal("AUTH", code)
    assert.matches("HTTP 401: Unauthorized", msg, 1, true)
    assert.equal(0, #fake.state().pods)
  end)

  describe("execute (api mode, exec WebSocket)", function()
    local sb
    setup(function()
      fake.configure { readyAfter = 0 }
      sb = sandbox { sandbox_id = "exec" }
      assert(sb:start())
    end)
    teardown(function() sb:stop() end)

    it("separates stdout and stderr and reads the exit code from the status channel", function()
      local r = assert(sb:execute("echo out; echo err >&2"))
      assert.equal("out\n", r.stdout)
      assert.equal("err\n", r.stderr)
      assert.matches("out\n", r.output, 1, true)
      assert.matches("err\n", r.output, 1, true)
      assert.equal(0, r.exit_code)
      assert.is_false(r.timed_out)
      local before = sb.last_activity
      moonbox.sleep(0.01)
      assert.equal(7, sb:execute("exit 7").exit_code)
      assert.is_true(sb.last_activity > before)
      assert.equal(127, sb:execute("no-such-command-xyz").exit_code)
      assert.equal("number", type(r.duration))
    end)

    it("runs in /workspace, with cwd and env options", function()
      assert(sb:write("/sub/f.txt", "x"))
      assert.equal("f.txt\n", sb:execute("ls", { cwd = "sub" }).output)
      assert.equal("v a'b\n", sb:execute("echo \"$V\"", { env = { V = "v a'b" } }).output)
      assert.has_error(function() sb:execute("true", { bogus = 1 }) end, "execute: unknown option 'bogus'")
      local r, msg, code = sb:execute("echo \0")
      assert.is_nil(r)
      assert.equal("INVALID", code)
      assert.matches("NUL", msg)
    end)

    it("stops a command at its timeout with exit code 124 and the output so far", function()
      local t0 = moonbox.now()
      local r = assert(sb:execute("echo before; sleep 5; echo after", { timeout = 1 }))
      assert.is_true(moonbox.now() - t0 < 4)
      assert.equal(124, r.exit_code)
      assert.is_true(r.timed_out)
      assert.equal("before\n", r.output)
    end)

    it("caps the output and says it was truncated", function()
      local small = sandbox { sandbox_id = "exec", max_output = 1000, config = sb._client.cfg }
      small._started = true
      local r = assert(small:execute("head -c 5000 /dev/zero | tr '\\0' x; echo; exit 3"))
      assert.equal(1000, #r.output)
      assert.is_true(r.truncated)
      assert.equal(3, r.exit_code)
    end)

    it("runs background processes: spawn, read_output, list, kill", function()
      local id = assert(sb:spawn("echo one; sleep 0.2; echo two; exit 5"))
      assert.equal("bg_1", id)
      local out, r = {}, nil
      for _ = 1, 50 do
        r = assert(sb:read_output(id))
        out[#out + 1] = r.output
        if not r.running then break end
        moonbox.sleep(0.1)
      end
      assert.equal("one\ntwo\n", table.concat(out))
      assert.is_false(r.running)
      assert.equal(5, r.exit_code)
      local long = assert(sb:spawn("sleep 30"))
      local list = sb:list()
      assert.equal(2, #list)
      assert.same({ id = "bg_1", command = "echo one; sleep 0.2; echo two; exit 5", running = false, exit_code = 5 },
        list[1])
      assert.is_true(list[2].running)
      assert.is_true(sb:kill(long))
      assert.is_false(sb:kill(long))
      assert.is_false(sb:read_output(long).running)
      local none, msg, code = sb:read_output("bg_99")
      assert.is_nil(none)
      assert.equal("NOT_FOUND", code)
      assert.equal("No such background process: bg_99", msg)
    end)
  end)

  it("runs commands through the in-pod agent in http mode", function()
    fake.configure { readyAfter = 0 }
    local sb = sandbox { sandbox_id = "agent", mode = "http", port = fake.port }
    assert(sb:start())
    local pod = fake.state().pods[1]
    assert.equal(fake.port, pod.spec.containers[1].ports[1].containerPort)
    local r = assert(sb:execute("echo hi; exit 2"))
    assert.equal("hi\n", r.output)
    assert.equal(2, r.exit_code)
    assert(sb:write("/dir/a.txt", "one\ntwo\n"))
    assert.equal("     1\tone\n     2\ttwo", sb:read("/dir/a.txt"))
    assert.same({ { path = "/dir/a.txt", line_number = 2, line = "two" } }, sb:grep("tw"))
    r = assert(sb:execute("sleep 5", { timeout = 1 }))
    assert.equal(124, r.exit_code)
    assert.is_true(r.timed_out)
    sb._token = "wrong"
    local bad, msg, code = sb:execute("true")
    assert.is_nil(bad)
    assert.equal("AUTH", code)
    assert.matches("HTTP 401", msg, 1, true)
    assert(sb:stop())
  end)

  it("writes and reads files larger than one command", function()
    fake.configure { readyAfter = 0 }
    local sb = sandbox { sandbox_id = "big" }
    local parts = {}
    for i = 0, 255 do parts[#parts + 1] = string.char(i) end
    local data = string.rep(table.concat(parts), 200) -- 51,200 bytes, every byte value
    assert(sb:write("/bin.dat", data))
    assert.equal(data, sb:read_bytes("/bin.dat"))
    assert.equal(#data, sb:ls("/")[1].size)
    assert(sb:stop())
  end)
end)

describe("kubernetes_sandbox over TLS with a client certificate (fake API server)", function()
  local certs, rm_certs, fake
  setup(function()
    certs, rm_certs = tmpdir.make()
    assert(fake_k8s.make_certs(certs))
    fake = fake_k8s.start { tls = certs }
    fake.configure { readyAfter = 0 }
  end)
  teardown(function()
    fake.stop()
    rm_certs()
  end)

  local function read(name)
    local f = assert(io.open(certs .. "/" .. name, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end

  local function kubeconfig(with_cert)
    local lines = {
      "clusters:", "- name: tls", "  cluster:", "    server: " .. fake.url,
      "    certificate-authority-data: " .. codec.base64_encode(read("ca.pem")),
      "contexts:", "- name: t", "  context:", "    cluster: tls", "    user: u", "current-context: t",
      "users:", "- name: u", "  user:",
    }
    if with_cert then
      lines[#lines + 1] = "    client-certificate-data: " .. codec.base64_encode(read("client.pem"))
      lines[#lines + 1] = "    client-key-data: " .. codec.base64_encode(read("client.key"))
    else
      lines[#lines + 1] = "    token: none"
    end
    local path = certs .. (with_cert and "/with-cert" or "/without-cert")
    write(path, table.concat(lines, "\n") .. "\n")
    return path
  end

  it("authenticates pod calls and the exec WebSocket with the kubeconfig's client certificate and CA", function()
    local sb = assert(moonbox.kubernetes_sandbox { image = "x", kubeconfig = kubeconfig(true), sandbox_id = "tls" })
    assert.is_true(sb:start())
    local r = assert(sb:execute("echo secure"))
    assert.equal("secure\n", r.stdout)
    assert.is_true(sb:stop())
  end)

  it("fails to connect without a client certificate", function()
    local sb = assert(moonbox.kubernetes_sandbox { image = "x", kubeconfig = kubeconfig(false), sandbox_id = "nocert" })
    local ok, msg, code = sb:start()
    assert.is_nil(ok)
    assert.is_string(code)
    assert.matches("create pod pab-sandbox-nocert", msg, 1, true)
  end)
end)
