-- moonbox.kubernetes_sandbox: a sandbox in a Kubernetes pod (reference §4.3, KubernetesPodSandbox).
--
--   local sb = moonbox.kubernetes_sandbox{ image = "python:3.12-slim", namespace = "default",
--     mode = "api" | "http", port = 8080, exec_token =, kubeconfig = path, context =, in_cluster =,
--     service_account_dir =, pod_template =, startup_timeout = 60, idle_timeout = 3600, labels =,
--     env =, delete_on_stop = true, service_account_name = "default", sandbox_id =, timeout = 1800,
--     max_output = 100000 }
--
-- Auth (load_config): the in-cluster service account when its token file exists or
-- in_cluster = true (token + ca.crt + namespace from service_account_dir, the API server from
-- KUBERNETES_SERVICE_HOST/PORT), else `kubeconfig`, else $KUBECONFIG (its first entry), else
-- ~/.kube/config. A kubeconfig gives the current (or `context`) context's cluster (server,
-- certificate-authority[-data], insecure-skip-tls-verify) and user (token, tokenFile,
-- client-certificate[-data], client-key[-data]). Kubeconfigs are YAML: the subset kubectl and
-- cluster tools write (block mappings and sequences, plain/quoted scalars, {} and []) is parsed
-- here, and JSON kubeconfigs through moonbox.json.
--
-- start() creates the pod (the reference's spec: see pod_spec) and polls it every 0.5 s until it
-- runs, has an IP and is Ready; a terminal phase or startup_timeout deletes it again. Commands:
-- api mode goes over the exec subresource's WebSocket (v4.channel.k8s.io: stdout 1, stderr 2,
-- status 3 — a metav1.Status whose NonZeroExitCode cause gives the exit code); http mode POSTs
-- /exec to the in-pod agent (X-Sandbox-Token). Commands run as `timeout <t> sh -c <cmd>`, so a
-- timeout exits 124 (timed_out = true) with the output so far; the client also stops waiting
-- 10 s after the deadline. Files and background processes go through commands
-- (moonbox.remote_files) in /workspace. stop() kills background processes and deletes the pod.
--
-- Fail codes: CONFIG (no usable configuration), AUTH (401/403), HTTP (another API error),
-- TIMEOUT (pod not ready in time), STARTUP (pod failed), EIO (unexpected answers), plus those of
-- moonbox.http/moonbox.websocket and the backend's.
local json = require "moonbox.json"
local http = require "moonbox.http"
local task = require "moonbox.task"
local remote_files = require "moonbox.remote_files"

local M = {}

local SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
local WORK_DIR = "/workspace"
local MAX_OUTPUT = 100000
local DEFAULT_TIMEOUT = 1800

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function b64(s) return require("moonbox.backend").base64_decode((s:gsub("%s", ""))) end

-- YAML subset -----------------------------------------------------------------------------------

local yaml_key

local function yaml_scalar(s)
  if s:sub(1, 1) == '"' then
    local body = s:match('^"(.*)"%s*$')
    if not body then error("unterminated double-quoted string: " .. s, 0) end
    return (body:gsub("\\(.)", { n = "\n", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/", r = "\r" }))
  elseif s:sub(1, 1) == "'" then
    local body = s:match("^'(.*)'%s*$")
    if not body then error("unterminated single-quoted string: " .. s, 0) end
    return (body:gsub("''", "'"))
  end
  s = s:gsub("%s+#.*$", ""):gsub("%s+$", "")
  -- one-level flow collections: {a: b, c: d} and [a, b]
  local inner = s:match("^{%s*(.-)%s*}$")
  if inner and not inner:find("[{}%[%]]") then
    local map = {}
    for item in inner:gmatch("[^,]+") do
      local k, v = yaml_key((item:gsub("^%s+", "")))
      if not k then error("unsupported flow mapping entry: " .. item, 0) end
      map[k] = yaml_scalar(v)
    end
    return map
  end
  inner = s:match("^%[%s*(.-)%s*%]$")
  if inner and not inner:find("[{}%[%]]") then
    local seq = json.array()
    for item in inner:gmatch("[^,]+") do seq[#seq + 1] = yaml_scalar((item:gsub("^%s+", ""))) end
    return seq
  end
  if s == "~" or s == "null" then return nil end
  if s == "true" then return true end
  if s == "false" then return false end
  if s:match("^[%[{|>]") then error("unsupported YAML construct: " .. s, 0) end
  return s
end

yaml_key = function(line)
  local key, rest
  if line:sub(1, 1) == '"' or line:sub(1, 1) == "'" then
    local qch = line:sub(1, 1)
    key, rest = line:match("^" .. qch .. "(.-)" .. qch .. "%s*:%s*(.*)$")
  else
    key, rest = line:match("^([^:]-)%s*:%s+(.*)$")
    if not key then key, rest = line:match("^([^:]-)%s*:$"), "" end
  end
  return key, rest
end

local parse_node

local function parse_map(lines, i, ind)
  local map = {}
  while lines[i] and lines[i].indent == ind and not lines[i].text:match("^%-%s") and lines[i].text ~= "-" do
    local key, rest = yaml_key(lines[i].text)
    if not key then error("line " .. lines[i].n .. ": expected 'key: value'", 0) end
    if rest == "" then
      local nxt = lines[i + 1]
      if nxt and (nxt.indent > ind or (nxt.indent == ind and (nxt.text:match("^%-%s") or nxt.text == "-"))) then
        map[key], i = parse_node(lines, i + 1)
      else
        i = i + 1
      end
    else
      map[key] = yaml_scalar(rest)
      i = i + 1
    end
  end
  if lines[i] and lines[i].indent > ind then error("line " .. lines[i].n .. ": unexpected indentation", 0) end
  return map, i
end

parse_node = function(lines, i)
  local first = lines[i]
  if not (first.text:match("^%-%s") or first.text == "-") then return parse_map(lines, i, first.indent) end
  local seq, ind = {}, first.indent
  while lines[i] and lines[i].indent == ind and (lines[i].text:match("^%-%s") or lines[i].text == "-") do
    local rest = lines[i].text:match("^%-%s*(.*)$")
    if rest == "" then
      if lines[i + 1] and lines[i + 1].indent > ind then
        seq[#seq + 1], i = parse_node(lines, i + 1)
      else
        seq[#seq + 1] = json.null
        i = i + 1
      end
    elseif yaml_key(rest) and not rest:match("^[\"']") or rest:match("^[\"'].-[\"']%s*:") then
      lines[i] = { indent = ind + (#lines[i].text - #rest), text = rest, n = lines[i].n }
      seq[#seq + 1], i = parse_map(lines, i, lines[i].indent)
    else
      seq[#seq + 1] = yaml_scalar(rest)
      i = i + 1
    end
  end
  return seq, i
end

-- Parses a kubeconfig (YAML subset or JSON) --> table | nil, msg
function M.parse_yaml(text)
  if text:match("^%s*{") then
    local ok, v = pcall(json.decode, text)
    if ok then return v end
    return nil, tostring(v)
  end
  local lines = {}
  local n = 0
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    raw = raw:gsub("\r$", "")
    if raw:find("\t", 1, true) and raw:match("^%s*\t") then return nil, "line " .. n .. ": tabs in indentation" end
    local ind, body = raw:match("^( *)(.*)$")
    if body ~= "" and not body:match("^#") and body ~= "---" and body ~= "..." then
      lines[#lines + 1] = { indent = #ind, text = body:gsub("%s+$", ""), n = n }
    end
  end
  if #lines == 0 then return {} end
  local ok, v, i = pcall(parse_node, lines, 1)
  if not ok then return nil, v end
  if lines[i] then return nil, "line " .. lines[i].n .. ": unexpected content" end
  return v
end

-- Configuration ---------------------------------------------------------------------------------

local function config_fail(msg) return nil, "failed to load kubernetes config: " .. msg, "CONFIG" end

local function named(list, name, what)
  for _, e in ipairs(type(list) == "table" and list or {}) do
    if type(e) == "table" and e.name == name then return e[what] or {} end
  end
  return nil
end

local function in_cluster_config(dir, env)
  local token = read_file(dir .. "/token")
  if not token then return config_fail("no service account token at " .. dir .. "/token") end
  local host, port = env("KUBERNETES_SERVICE_HOST"), env("KUBERNETES_SERVICE_PORT")
  if not host or host == "" or not port or port == "" then
    return config_fail("in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
  end
  if host:find(":", 1, true) then host = "[" .. host .. "]" end
  local ca = dir .. "/ca.crt"
  local ns = read_file(dir .. "/namespace")
  return {
    server = "https://" .. host .. ":" .. port,
    token = token:gsub("%s+$", ""),
    ca_file = read_file(ca) and ca or nil,
    namespace = ns and ns:gsub("%s+$", "") or nil,
    source = "in-cluster",
  }
end

local function kubeconfig_config(path, context)
  local text = read_file(path)
  if not text then return config_fail("cannot read kubeconfig " .. path) end
  local doc, err = M.parse_yaml(text)
  if type(doc) ~= "table" then return config_fail(path .. ": " .. tostring(err or "not a kubeconfig")) end
  local dir = path:match("^(.*)/[^/]*$") or "."
  local function resolve(p)
    if type(p) ~= "string" then return nil end
    if p:sub(1, 1) == "/" then return p end
    return dir .. "/" .. p
  end
  local ctx_name = context or doc["current-context"]
  if type(ctx_name) ~= "string" or ctx_name == "" then return config_fail(path .. ": no current-context") end
  local ctx = named(doc.contexts, ctx_name, "context")
  if not ctx then return config_fail(path .. ": context '" .. ctx_name .. "' not found") end
  local cluster = named(doc.clusters, ctx.cluster, "cluster")
  if not cluster then return config_fail(path .. ": cluster '" .. tostring(ctx.cluster) .. "' not found") end
  if type(cluster.server) ~= "string" then return config_fail(path .. ": cluster has no server") end
  local user = named(doc.users, ctx.user, "user") or {}
  local cfg = {
    server = cluster.server:gsub("/+$", ""),
    namespace = ctx.namespace,
    verify = cluster["insecure-skip-tls-verify"] ~= true,
    source = path,
    context = ctx_name,
  }
  if cluster["certificate-authority-data"] then
    cfg.ca_data = b64(cluster["certificate-authority-data"])
    if not cfg.ca_data then return config_fail(path .. ": certificate-authority-data is not base64") end
  elseif cluster["certificate-authority"] then
    cfg.ca_file = resolve(cluster["certificate-authority"])
  end
  if user.token then
    cfg.token = user.token
  elseif user.tokenFile then
    local t = read_file(resolve(user.tokenFile))
    if not t then return config_fail(path .. ": cannot read tokenFile " .. user.tokenFile) end
    cfg.token = t:gsub("%s+$", "")
  end
  for _, k in ipairs { { "client-certificate", "client_cert" }, { "client-key", "client_key" } } do
    local data, file = user[k[1] .. "-data"], user[k[1]]
    if data then
      cfg[k[2]] = b64(data)
      if not cfg[k[2]] then return config_fail(path .. ": " .. k[1] .. "-data is not base64") end
    elseif file then
      cfg[k[2]] = read_file(resolve(file))
      if not cfg[k[2]] then return config_fail(path .. ": cannot read " .. k[1] .. " " .. file) end
    end
  end
  if user.exec or user["auth-provider"] then
    return config_fail(path .. ": user '" .. tostring(ctx.user) .. "' uses an exec/auth-provider plugin, "
      .. "which moonbox does not run; give a token or a client certificate")
  end
  return cfg
end

-- load_config{ kubeconfig =, context =, in_cluster =, service_account_dir =, env = {..} }
--   --> { server, token, ca_data, ca_file, client_cert, client_key, verify, namespace, source }
function M.load_config(opts)
  opts = opts or {}
  local env = opts.env and function(k) return opts.env[k] end or os.getenv
  local dir = opts.service_account_dir or SA_DIR
  local in_cluster = opts.in_cluster
  if in_cluster == nil and not opts.kubeconfig then in_cluster = read_file(dir .. "/token") ~= nil end
  if in_cluster then return in_cluster_config(dir, env) end
  local path = opts.kubeconfig
  if not path then
    local kc = env("KUBECONFIG")
    if kc and kc ~= "" then
      path = kc:match("^[^:]+")
    else
      local home = env("HOME")
      if not home then return config_fail("no kubeconfig: set KUBECONFIG or pass kubeconfig =") end
      path = home .. "/.kube/config"
    end
  end
  return kubeconfig_config(path, opts.context)
end

-- Pod spec --------------------------------------------------------------------------------------

-- "pab-sandbox-" + the id lower-cased, non-alphanumerics as "-", trimmed, at most 63 characters.
function M.pod_name(id)
  local name = ("pab-sandbox-" .. id:lower():gsub("[^a-z0-9]", "-")):gsub("%-+$", "")
  name = name:sub(1, 63):gsub("%-+$", "")
  return name
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function env_list(base, extra)
  local list = {}
  for _, e in ipairs(base) do list[#list + 1] = e end
  local keys = {}
  for k in pairs(extra or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do list[#list + 1] = { name = k, value = tostring(extra[k]) } end
  return list
end

-- The pod manifest (reference defaults, or pod_template with the required fields filled in).
function M.pod_spec(o)
  local labels = { app = "pab-sandbox", ["pab-sandbox-id"] = o.id:lower():gsub("[^a-z0-9%-_.]", "-"):sub(1, 63) }
  for k, v in pairs(o.labels or {}) do labels[k] = v end
  local required_env = {
    { name = "SANDBOX_EXEC_TOKEN", value = o.exec_token },
    { name = "SANDBOX_PORT", value = tostring(o.port) },
    { name = "PYTHONUNBUFFERED", value = "1" },
  }
  local probe = {
    httpGet = { path = "/health", port = "exec" },
    initialDelaySeconds = 1, periodSeconds = 2, failureThreshold = 5,
  }
  if o.pod_template then
    local pod = deep_copy(o.pod_template)
    pod.apiVersion, pod.kind = pod.apiVersion or "v1", pod.kind or "Pod"
    pod.metadata = pod.metadata or {}
    pod.metadata.name, pod.metadata.namespace = o.name, o.namespace
    pod.metadata.labels = pod.metadata.labels or {}
    for k, v in pairs(labels) do pod.metadata.labels[k] = v end
    pod.spec = pod.spec or {}
    pod.spec.containers = pod.spec.containers or { { name = "sandbox" } }
    local c = pod.spec.containers[1]
    c.image = o.image or c.image
    c.env = env_list(required_env, o.env)
    if o.mode == "http" then
      c.ports = { { name = "exec", containerPort = o.port } }
      c.readinessProbe = probe
    end
    return pod
  end
  local container = {
    name = "sandbox",
    image = o.image,
    imagePullPolicy = "IfNotPresent",
    workingDir = WORK_DIR,
    env = env_list(required_env, o.env),
    securityContext = {
      allowPrivilegeEscalation = false,
      readOnlyRootFilesystem = true,
      capabilities = { drop = { "ALL" } },
    },
    resources = {
      requests = { memory = "256Mi", cpu = "100m" },
      limits = { memory = "768Mi", cpu = "1" },
    },
    volumeMounts = {
      { name = "workspace", mountPath = WORK_DIR },
      { name = "tmp", mountPath = "/tmp" },
    },
  }
  if o.mode == "http" then
    container.ports = { { name = "exec", containerPort = o.port } }
    container.readinessProbe = probe
  else
    container.command = { "sleep", "infinity" }
  end
  return {
    apiVersion = "v1",
    kind = "Pod",
    metadata = { name = o.name, namespace = o.namespace, labels = labels },
    spec = {
      restartPolicy = "Never",
      automountServiceAccountToken = false,
      enableServiceLinks = false,
      serviceAccountName = o.service_account_name,
      securityContext = {
        runAsNonRoot = true, runAsUser = 1000, runAsGroup = 1000, fsGroup = 1000,
        seccompProfile = { type = "RuntimeDefault" },
      },
      containers = { container },
      volumes = {
        { name = "workspace", emptyDir = { sizeLimit = "1Gi" } },
        { name = "tmp", emptyDir = { sizeLimit = "256Mi" } },
      },
    },
  }
end

-- The API client --------------------------------------------------------------------------------

local Client = {}
Client.__index = Client

function M.client(cfg)
  return setmetatable({ cfg = cfg }, Client)
end

function Client:_tls(t)
  local c = self.cfg
  t.verify, t.ca_file, t.ca_data = c.verify ~= false, c.ca_file, c.ca_data
  t.client_cert, t.client_key = c.client_cert, c.client_key
  return t
end

local function status_message(body)
  local ok, st = pcall(json.decode, body or "")
  if ok and type(st) == "table" and type(st.message) == "string" then return st.message end
  return (body or ""):sub(1, 200)
end

-- One API call: decoded JSON body or nil, msg, CODE.
function Client:request(method, path, body, what)
  local headers = { Accept = "application/json" }
  if self.cfg.token then headers.Authorization = "Bearer " .. self.cfg.token end
  if body then headers["Content-Type"] = "application/json" end
  local r, msg, code = http.request(self:_tls {
    url = self.cfg.server .. path, method = method, headers = headers,
    body = body and json.encode(body) or nil, timeout = 30,
  })
  if not r then return nil, what .. ": " .. msg, code end
  if r.status >= 400 then
    local c = (r.status == 401 or r.status == 403) and "AUTH" or r.status == 404 and "NOT_FOUND" or "HTTP"
    return nil, string.format("%s: HTTP %d: %s", what, r.status, status_message(r.body)), c
  end
  local ok, v = pcall(json.decode, r.body)
  if not ok then return nil, what .. ": the API server's answer is not JSON", "EIO" end
  return v
end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Runs argv in the pod over the exec WebSocket.
--   --> { output, stdout, stderr, exit_code, truncated } | nil, msg, CODE
-- `wait` bounds the whole exchange (seconds); when it passes, the partial output comes back with
-- exit_code 124 and timed_out = true.
function Client:exec(ns, pod, argv, max_output, wait)
  local ws = require "moonbox.websocket"
  local parts = {}
  for _, a in ipairs(argv) do parts[#parts + 1] = "command=" .. urlencode(a) end
  local url = self.cfg.server:gsub("^http", "ws") .. "/api/v1/namespaces/" .. urlencode(ns) .. "/pods/"
    .. urlencode(pod) .. "/exec?" .. table.concat(parts, "&")
    .. "&container=sandbox&stdin=false&stdout=true&stderr=true&tty=false"
  local headers = {}
  if self.cfg.token then headers.Authorization = "Bearer " .. self.cfg.token end
  local conn, msg, code = ws.connect(self:_tls {
    url = url, headers = headers, protocols = { "v4.channel.k8s.io" }, timeout = 30,
  })
  if not conn then
    if code == "HTTP" or (msg or ""):match(" 40[13]") then code = "AUTH" end
    return nil, "exec in pod " .. pod .. ": " .. tostring(msg), code
  end
  local out, so, se = {}, {}, {}
  local size, truncated, status = 0, false, nil
  local deadline = task.now() + wait
  local timed_out = false
  while true do
    local left = deadline - task.now()
    if left <= 0 then
      timed_out = true
      break
    end
    local data, rmsg, rcode = conn:receive(left)
    if data == nil then
      if rcode == "TIMEOUT" then timed_out = true end
      if rcode ~= "CLOSED" and rcode ~= "TIMEOUT" then
        conn:close()
        return nil, "exec in pod " .. pod .. ": " .. tostring(rmsg), rcode
      end
      break
    end
    local ch, payload = data:byte(1), data:sub(2)
    if ch == 1 or ch == 2 then
      if size < max_output then
        local piece = payload:sub(1, max_output - size)
        if #piece < #payload then truncated = true end
        size = size + #piece
        out[#out + 1] = piece
        local t = ch == 1 and so or se
        t[#t + 1] = piece
      elseif #payload > 0 then
        truncated = true
      end
    elseif ch == 3 and #payload > 0 then
      status = payload
    end
  end
  conn:close()
  local exit_code = 1
  if status then
    local ok, st = pcall(json.decode, status)
    if ok and type(st) == "table" then
      if st.status == "Success" then
        exit_code = 0
      else
        local causes = type(st.details) == "table" and st.details.causes or {}
        for _, c in ipairs(type(causes) == "table" and causes or {}) do
          if type(c) == "table" and c.reason == "ExitCode" then exit_code = tonumber(c.message) or 1 end
        end
        if st.reason ~= "NonZeroExitCode" and type(st.message) == "string" then
          se[#se + 1] = st.message
          out[#out + 1] = st.message
        end
      end
    end
  elseif timed_out then
    exit_code = 124
  end
  return {
    output = table.concat(out), stdout = table.concat(so), stderr = table.concat(se),
    exit_code = exit_code, truncated = truncated, timed_out = timed_out or exit_code == 124,
  }
end

-- The sandbox -----------------------------------------------------------------------------------

local Sandbox = {}

local options = {
  image = "string", namespace = "string", sandbox_id = "string", session_id = "string", mode = "string",
  port = "number", exec_token = "string", pod_template = "table", kubeconfig = "string",
  kube_config_path = "string", context = "string", in_cluster = "boolean", service_account_dir = "string",
  startup_timeout = "number", idle_timeout = "number", labels = "table", env = "table",
  delete_on_stop = "boolean", service_account_name = "string", timeout = "number", max_output = "number",
  config = "table",
}

local function random_hex(n)
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(n) or tostring(os.time()) .. tostring(os.clock())
  if f then f:close() end
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function M.new(opts)
  if type(opts) ~= "table" then error("kubernetes_sandbox: expects a table of options", 2) end
  for k, v in pairs(opts) do
    local want = options[k]
    if not want then error("kubernetes_sandbox: unknown option '" .. tostring(k) .. "'", 2) end
    if type(v) ~= want then
      error(string.format("kubernetes_sandbox: %s must be a %s, not a %s", k, want, type(v)), 2)
    end
  end
  local mode = opts.mode or "api"
  if mode ~= "api" and mode ~= "http" then error("kubernetes_sandbox: mode must be \"api\" or \"http\"", 2) end
  if not opts.image and not opts.pod_template then error("kubernetes_sandbox: image is required", 2) end
  local cfg, msg, code = opts.config
  if not cfg then
    cfg, msg, code = M.load_config {
      kubeconfig = opts.kubeconfig or opts.kube_config_path, context = opts.context,
      in_cluster = opts.in_cluster, service_account_dir = opts.service_account_dir,
    }
    if not cfg then return nil, msg, code end
  end
  local id = opts.sandbox_id or opts.session_id or random_hex(8)
  local self = setmetatable({
    id = id,
    kind = "kubernetes",
    root = WORK_DIR,
    namespace = opts.namespace or cfg.namespace or "default",
    pod_name = M.pod_name(id),
    mode = mode,
    _port = math.tointeger(opts.port or 8080),
    _token = opts.exec_token or random_hex(16),
    _image = opts.image,
    _opts = opts,
    _client = M.client(cfg),
    _startup_timeout = opts.startup_timeout or 60,
    _timeout = opts.timeout or DEFAULT_TIMEOUT,
    _max_output = math.tointeger(opts.max_output or MAX_OUTPUT),
    _delete = opts.delete_on_stop ~= false,
    _started = false,
    last_activity = task.now(), -- task.now() seconds, as the session manager reads it
    idle_timeout = opts.idle_timeout or 3600, -- for a session manager; the pod itself never idles out
  }, M._meta)
  local function run(script, timeout)
    local r, rmsg, rcode = self:_exec(script, timeout, 1 << 30)
    if not r then return nil, rmsg, rcode end
    return r.stdout, r.exit_code
  end
  self._files = remote_files.new { root = WORK_DIR, run = run }
  self._bg = remote_files.background { run = run, cwd = WORK_DIR, tag = self.pod_name }
  return self
end

M._meta = {
  __name = "moonbox.kubernetes.Sandbox",
  __index = function(self, key)
    local m = Sandbox[key]
    if m ~= nil then return m end
    if type(key) ~= "string" or key:sub(1, 1) == "_" then return nil end
    local f = remote_files.Files[key]
    if type(f) ~= "function" then return nil end
    local bound = function(s, ...)
      local ok, msg, code = s:start()
      if not ok then return nil, msg, code end
      return f(s._files, ...)
    end
    rawset(self, key, bound)
    return bound
  end,
  __tostring = function(self)
    return string.format("moonbox.kubernetes.Sandbox: %s (pod %s/%s, %s mode)", self.id, self.namespace,
      self.pod_name, self.mode)
  end,
}

function Sandbox:_pod_path()
  return "/api/v1/namespaces/" .. urlencode(self.namespace) .. "/pods/" .. urlencode(self.pod_name)
end

function Sandbox:manifest()
  return M.pod_spec {
    id = self.id, name = self.pod_name, namespace = self.namespace, image = self._image, mode = self.mode,
    port = self._port, exec_token = self._token, env = self._opts.env, labels = self._opts.labels,
    pod_template = self._opts.pod_template,
    service_account_name = self._opts.service_account_name or "default",
  }
end

function Sandbox:_delete_pod()
  return self._client:request("DELETE", self:_pod_path(),
    { kind = "DeleteOptions", apiVersion = "v1", gracePeriodSeconds = 30, propagationPolicy = "Background" },
    "delete pod " .. self.pod_name)
end

function Sandbox:start()
  if self._started then return true end
  local c = self._client
  local created, msg, code = c:request("POST", "/api/v1/namespaces/" .. urlencode(self.namespace) .. "/pods",
    self:manifest(), "create pod " .. self.pod_name)
  if not created then return nil, "kubernetes_sandbox: " .. msg, code end
  local deadline = task.now() + self._startup_timeout
  while true do
    local pod, gmsg, gcode = c:request("GET", self:_pod_path(), nil, "read pod " .. self.pod_name)
    if not pod and gcode ~= "UNAVAILABLE" and gcode ~= "TIMEOUT" then
      self:_delete_pod()
      return nil, "kubernetes_sandbox: " .. gmsg, gcode
    end
    local st = pod and type(pod.status) == "table" and pod.status or {}
    if st.phase == "Failed" or st.phase == "Succeeded" then
      self:_delete_pod()
      return nil, string.format("kubernetes_sandbox: pod %s ended in phase %s before it was ready%s", self.pod_name,
        st.phase, type(st.message) == "string" and ": " .. st.message or ""), "STARTUP"
    end
    local ready = false
    for _, cond in ipairs(type(st.conditions) == "table" and st.conditions or {}) do
      if type(cond) == "table" and cond.type == "Ready" and cond.status == "True" then ready = true end
    end
    if st.phase == "Running" and st.podIP and ready then
      self.pod_ip = st.podIP
      break
    end
    if task.now() >= deadline then
      self:_delete_pod()
      return nil, string.format("kubernetes_sandbox: pod %s was not ready within %s seconds (deleted)",
        self.pod_name, self._startup_timeout), "TIMEOUT"
    end
    task.sleep(0.5)
  end
  self._started = true
  return true
end

function Sandbox:is_alive()
  if not self._started then return false end
  local pod = self._client:request("GET", self:_pod_path(), nil, "read pod")
  return pod ~= nil and type(pod.status) == "table" and pod.status.phase == "Running"
end

function Sandbox:stop()
  if not self._started then return true end
  self._bg:kill_all()
  self._started = false
  if self._delete then
    local ok, msg, code = self:_delete_pod()
    if not ok and code ~= "NOT_FOUND" then return nil, "kubernetes_sandbox: " .. msg, code end
  end
  return true
end

-- `sh -c script` in the pod with a bounded run time; result table or nil, msg, CODE.
function Sandbox:_exec(script, timeout, max_output)
  local t = math.max(1, math.ceil(timeout))
  local t0 = task.now()
  local r, msg, code
  if self.mode == "http" then
    local resp
    resp, msg, code = http.request {
      url = "http://" .. self.pod_ip .. ":" .. self._port .. "/exec", method = "POST",
      headers = { ["Content-Type"] = "application/json", ["X-Sandbox-Token"] = self._token },
      body = json.encode { command = script, timeout_seconds = t }, timeout = t + 10,
    }
    if not resp then return nil, "exec: " .. msg, code end
    if resp.status >= 400 then
      return nil, string.format("exec: HTTP %d from the sandbox agent", resp.status),
        (resp.status == 401 or resp.status == 403) and "AUTH" or "HTTP"
    end
    local ok, v = pcall(json.decode, resp.body)
    if not ok or type(v) ~= "table" or type(v.output) ~= "string" then
      return nil, "exec: the sandbox agent's answer is not {output, exit_code}", "EIO"
    end
    local output, truncated = v.output, v.truncated == true
    if #output > max_output then output, truncated = output:sub(1, max_output), true end
    local ec = math.tointeger(v.exit_code) or 1
    r = { output = output, stdout = output, stderr = "", exit_code = ec, truncated = truncated, timed_out = ec == 124 }
  else
    r, msg, code = self._client:exec(self.namespace, self.pod_name, { "timeout", tostring(t), "sh", "-c", script },
      max_output, t + 10)
    if not r then return nil, msg, code end
  end
  r.duration = task.now() - t0
  self.last_activity = task.now()
  return r
end

local execute_options = { timeout = "number", cwd = "string", env = "table" }

local function prefix(opts)
  local pre = {}
  if opts.env then
    local keys = {}
    for k in pairs(opts.env) do
      if type(k) ~= "string" or not k:match("^[%a_][%w_]*$") then error("execute: bad environment name", 3) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for _, k in ipairs(keys) do
      pre[#pre + 1] = "export " .. k .. "=" .. remote_files.quote(tostring(opts.env[k])) .. "; "
    end
  end
  if opts.cwd then
    local dir = opts.cwd:sub(1, 1) == "/" and opts.cwd or WORK_DIR .. "/" .. opts.cwd
    pre[#pre + 1] = "cd " .. remote_files.quote(dir) .. " || exit 1; "
  end
  return table.concat(pre)
end

local function check_exec_args(where, command, opts)
  return remote_files.check_exec_args(where, command, opts, execute_options, 4)
end

-- execute(command [, {timeout = 1800, cwd, env}]) --> {output, stdout, stderr, exit_code, truncated,
-- timed_out, duration} | nil, msg, CODE
function Sandbox:execute(command, opts)
  local ok, msg, code = check_exec_args("execute", command, opts)
  if not ok then return nil, msg, code end
  opts = opts or {}
  local timeout = opts.timeout or self._timeout
  if timeout < 0 then error("execute: timeout must be >= 0", 2) end
  ok, msg, code = self:start()
  if not ok then return nil, msg, code end
  return self:_exec("cd " .. WORK_DIR .. " 2>/dev/null; " .. prefix(opts) .. command, timeout, self._max_output)
end

function Sandbox:spawn(command, opts)
  local ok, msg, code = check_exec_args("spawn", command, opts)
  if not ok then return nil, msg, code end
  ok, msg, code = self:start()
  if not ok then return nil, msg, code end
  return self._bg:spawn(prefix(opts or {}) .. command)
end

function Sandbox:read_output(id) return self._bg:read_output(id) end
function Sandbox:kill(id) return self._bg:kill(id) end
function Sandbox:list() return self._bg:list() end
function Sandbox:kill_all() return self._bg:kill_all() end
function Sandbox:touch() self.last_activity = task.now() end

M.Sandbox = Sandbox
M.kubernetes_sandbox = M.new

return M
