-- Starts spec/support/fake_llm.mjs (the loopback fake of the OpenAI and Anthropic APIs) and
-- drives its control endpoints. Blocking calls; fine in specs.
local cjson = require "cjson"
local http = require "moonbox.http"

local M = {}
M.__index = M

function M.start(opts)
  opts = opts or {}
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec/support"
  local extra = opts.unix and (" --unix '" .. opts.unix .. "'") or ""
  local f = assert(io.popen("exec node " .. here .. "/fake_llm.mjs --parent $PPID" .. extra, "r"))
  local line = f:read("l")
  local port = line and tonumber(line:match("^PORT (%d+)"))
  assert(port, "fake_llm did not start: " .. tostring(line))
  return setmetatable({ proc = f, port = port, url = "http://127.0.0.1:" .. port }, M)
end

function M:_post(path, value)
  local r = assert(http.request { url = self.url .. path, method = "POST",
    body = value and cjson.encode(value) or "",
    headers = { ["content-type"] = "application/json" } })
  assert(r.status == 200, r.body)
  return cjson.decode(r.body)
end

-- queue turns (see fake_llm.mjs for their fields)
function M:script(turns) return self:_post("/_script", turns) end
function M:auto(cfg) return self:_post("/_auto", cfg) end
function M:reset() return self:_post("/_reset") end

function M:requests()
  local r = assert(http.request { url = self.url .. "/_requests" })
  return cjson.decode(r.body)
end

function M:close()
  if not self.proc then return end
  pcall(self._post, self, "/_shutdown")
  self.proc:close()
  self.proc = nil
end

return M
