-- The backend protocol suite against docker_sandbox: every case gets a fresh work_dir in one
-- shared container (a container per case would only measure container start-up).
local moonbox = require "moonbox"
local docker = require "spec.support.docker"

if not docker.socket then
  pending("docker_sandbox conformance: " .. docker.why)
  return
end

local name = "moonbox-conformance-" .. string.format("%d-%d", os.time(), math.random(1e6))
local n = 0

describe("docker_sandbox files", function()
  teardown(function() docker.remove_named(name) end)

  require "spec.support.conformance.backend" ("docker_sandbox", function()
    n = n + 1
    local sb = moonbox.docker_sandbox {
      image = docker.image, socket = docker.socket, container_name = name, work_dir = "/cases/c" .. n,
    }
    return sb, nil, { pcre = true }
  end)
end)
