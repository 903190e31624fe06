-- A sandbox made of Lua tables for the toolset specs: the conformance suite's Lua backend
-- (spec/support/lua_backend.lua) plus execute and background shells answered by a Lua function.
--
--   local sb = table_sandbox.new(files, function(command, opts) return {output =, exit_code =} end)
--   sb:feed("bg_1", "text", exit_code)   -- what a background shell prints next, and/or its exit
local lua_backend = require "spec.support.lua_backend"

local M = {}

local function execute(self, command, opts)
  if type(command) ~= "string" then error("bad argument #1 to 'execute' (string expected)", 2) end
  self.last_execute = { command = command, opts = opts }
  return self.run(command, opts or {})
end

local function spawn(self, command)
  self.next_shell = self.next_shell + 1
  local id = "bg_" .. self.next_shell
  local shell = { id = id, command = command, pid = 1000 + self.next_shell, running = true, pending = {} }
  self.shells[id] = shell
  self.order[#self.order + 1] = shell
  return id
end

local function feed(self, id, text, exit_code)
  local s = self.shells[id]
  if text then s.pending[#s.pending + 1] = text end
  if exit_code then s.running, s.exit_code = false, exit_code end
end

local function read_output(self, id)
  local s = self.shells[id]
  if not s then return nil, ("read_output: no such background shell '%s'"):format(id), "ENOENT" end
  local text = table.concat(s.pending)
  s.pending = {}
  return { output = text, running = s.running, exit_code = s.exit_code }
end

local function kill(self, id)
  local s = self.shells[id]
  if not s or not s.running then return false end
  s.running, s.exit_code = false, -9
  return true
end

local function list(self)
  local out = {}
  for _, s in ipairs(self.order) do
    out[#out + 1] = { id = s.id, command = s.command, pid = s.pid, running = s.running, exit_code = s.exit_code }
  end
  return out
end

function M.new(files, run)
  local sb = lua_backend.new { files = files or {} }
  sb.run, sb.shells, sb.order, sb.next_shell = run, {}, {}, 0
  sb.execute, sb.spawn, sb.feed, sb.read_output, sb.kill, sb.list = execute, spawn, feed, read_output, kill, list
  return sb
end

return M
