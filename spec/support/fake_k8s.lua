-- Starts the FAKE Kubernetes API server (spec/support/fake_k8s.mjs) for a spec and writes a
-- kubeconfig pointing at it. Nothing here talks to a real cluster.
local http = require "moonbox.http"
local json = require "moonbox.json"
local tmpdir = require "spec.support.tmpdir"

local M = {}

-- A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, made with the
-- openssl CLI in dir (ca.pem, server.pem/.key, client.pem/.key). Returns true or nil, why.
function M.make_certs(dir)
  local q = tmpdir.sh_quote(dir)
  local ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  local script = "(" .. table.concat({
    "cd " .. q,
    "printf 'subjectAltName=IP:127.0.0.1\n' > san.ext",
    "openssl req -x509 " .. ec .. " -keyout ca.key -out ca.pem -days 1 -subj /CN=fake-k8s-ca",
    "openssl req " .. ec .. " -keyout server.key -out server.csr -subj /CN=127.0.0.1",
    "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1"
      .. " -extfile san.ext",
    "openssl req " .. ec .. " -keyout client.key -out client.csr -subj /CN=tester",
    "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1",
  }, " && ") .. ") >/dev/null 2>&1"
  local ok = os.execute(script)
  if not ok then return nil, "openssl could not make the test certificates" end
  return true
end

-- opts.tls = dir with certificates from make_certs: serve HTTPS/WSS and require client certs.
function M.start(opts)
  opts = opts or {}
  local cmd = "exec node spec/support/fake_k8s.mjs --parent $PPID --token fake-token"
  if opts.tls then cmd = cmd .. " --tls " .. tmpdir.sh_quote(opts.tls) end
  local proc = assert(io.popen(cmd, "r"))
  local port = tonumber((proc:read("l") or ""):match("^PORT (%d+)"))
  assert(port, "fake_k8s did not start")
  local dir, rm = tmpdir.make()
  local scheme = opts.tls and "https" or "http"
  local fake = { port = port, url = scheme .. "://127.0.0.1:" .. port, dir = dir }
  fake.kubeconfig = M.write_kubeconfig(dir .. "/config", fake.url, "fake-token")
  local function read(name)
    local f = assert(io.open(opts.tls .. "/" .. name, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end
  -- the fake's control calls, with the client certificate when it serves TLS
  local function call(t)
    if opts.tls then
      t.ca_file, t.client_cert, t.client_key = opts.tls .. "/ca.pem", read("client.pem"), read("client.key")
    end
    return http.request(t)
  end
  function fake.state()
    local r = assert(call { url = fake.url .. "/_fake/state" })
    return json.decode(r.body)
  end
  function fake.configure(t)
    assert(call { url = fake.url .. "/_fake/config", method = "POST", body = json.encode(t) })
  end
  function fake.stop()
    call { url = fake.url .. "/_shutdown" }
    proc:close()
    rm()
  end
  return fake
end

function M.write_kubeconfig(path, server, token)
  local f = assert(io.open(path, "w"))
  f:write(table.concat({
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- cluster:",
    "    server: " .. server,
    "  name: fake",
    "contexts:",
    "- context:",
    "    cluster: fake",
    "    user: tester",
    "    namespace: sandboxes",
    "  name: fake-ctx",
    "current-context: fake-ctx",
    "users:",
    "- name: tester",
    "  user:",
    "    token: " .. token,
    "",
  }, "\n"))
  f:close()
  return path
end

return M
