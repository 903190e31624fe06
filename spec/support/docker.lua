-- The Docker daemon the docker specs run against.
--
--   local docker = require "spec.support.docker"
--   if docker.socket then ... else pending(docker.why) end
--
-- MOONBOX_TEST_DOCKER_HOST (unix:///path, set by .ci/setup after `.ci/dockerd start`) names the
-- daemon; it must hold the local test image (moonbox-test/busybox:1, imported from
-- busybox-static: no registry is reachable). When the variable is set but the daemon does not
-- answer, loading this module raises: the docker specs fail loudly instead of skipping. When
-- it is unset (a developer machine without Docker), `socket` is nil and `why` says so.
local http = require "moonbox.http"

local M = {
  image = os.getenv("MOONBOX_TEST_DOCKER_IMAGE") or "moonbox-test/busybox:1",
}

local host = os.getenv("MOONBOX_TEST_DOCKER_HOST")
if host == nil or host == "" then
  M.why = "MOONBOX_TEST_DOCKER_HOST is not set (run `bash .ci/dockerd start` and export "
    .. "MOONBOX_TEST_DOCKER_HOST=unix:///tmp/moonbox-docker/docker.sock)"
  return M
end
local path = host:match("^unix://(.+)$")
if not path then error("MOONBOX_TEST_DOCKER_HOST must be unix:///path, got " .. host) end
local r, msg = http.request { url = "http://localhost/v1.41/_ping", unix_socket = path, timeout = 10 }
if not r or r.status ~= 200 then
  error("MOONBOX_TEST_DOCKER_HOST=" .. host .. " is set but the daemon does not answer: "
    .. tostring(msg or (r and r.status)))
end
r = http.request { url = "http://localhost/v1.41/images/" .. M.image .. "/json", unix_socket = path }
if not r or r.status ~= 200 then
  error("the docker test image " .. M.image .. " is missing on " .. host .. " (.ci/dockerd start imports it)")
end
M.socket = path

-- Removes the containers a spec made (by name prefix), whatever state they are in.
function M.remove_named(prefix)
  local json = require "moonbox.json"
  local filters = json.encode { name = { prefix } }
  local list = http.request {
    url = "http://localhost/v1.41/containers/json?all=1&filters=" .. filters:gsub("[^%w]", function(c)
      return string.format("%%%02X", c:byte())
    end),
    unix_socket = path,
  }
  for _, c in ipairs(list and json.decode(list.body) or {}) do
    http.request {
      url = "http://localhost/v1.41/containers/" .. c.Id .. "?force=1", method = "DELETE", unix_socket = path,
    }
  end
end

return M
