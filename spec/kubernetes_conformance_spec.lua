-- The backend protocol suite against moonbox.kubernetes_sandbox, through the FAKE Kubernetes API
-- server (spec/support/fake_k8s.mjs): every file method runs as commands over the exec WebSocket,
-- which the fake executes for real in a per-pod temporary directory. A fresh pod per case.
local moonbox = require "moonbox"
local fake_k8s = require "spec.support.fake_k8s"
local conformance = require "spec.support.conformance.backend"

local fake = fake_k8s.start()
fake.configure { readyAfter = 0 }

describe("kubernetes_sandbox conformance (fake API server)", function()
  teardown(function() fake.stop() end)

  conformance("kubernetes_sandbox (api mode, fake API server)", function()
    local sb = assert(moonbox.kubernetes_sandbox { image = "fake", kubeconfig = fake.kubeconfig })
    assert(sb:start())
    return sb, function() sb:stop() end
  end)
end)
