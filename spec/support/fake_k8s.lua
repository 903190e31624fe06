-- Starts the FAKE Kubernetes API server (spec/support/fake_k8s.mjs) for a spec and writes a
-- kubeconfig pointing at it. Nothing here talks to a real cluster.
local http = require "moonbox.http"
local json = require "moonbox.json"
local tmpdir = require "spec.support.tmpdir"

local M = {}

function M.start()
  local proc = assert(io.popen("exec node spec/support/fake_k8s.mjs --parent $PPID --token fake-token", "r"))
  local port = tonumber((proc:read("l") or ""):match("^PORT (%d+)"))
  assert(port, "fake_k8s did not start")
  local dir, rm = tmpdir.make()
  local fake = { port = port, url = "http://127.0.0.1:" .. port, dir = dir }
  fake.kubeconfig = M.write_kubeconfig(dir .. "/config", fake.url, "fake-token")
  function fake.state()
    local r = assert(http.request { url = fake.url .. "/_fake/state" })
    return json.decode(r.body)
  end
  function fake.configure(t)
    assert(http.request { url = fake.url .. "/_fake/config", method = "POST", body = json.encode(t) })
  end
  function fake.stop()
    http.request { url = fake.url .. "/_shutdown" }
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
