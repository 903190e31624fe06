-- The backend protocol suite against composites: a state default with a mounted Lua-table route
-- (the mount shows at the root, so the suite is told about it), and a view that sends every
-- call of the suite through a route (the mount's backend does all the work, paths stripped on
-- the way in and re-prefixed on the way out).
local moonbox = require "moonbox"
local lua_backend = require "spec.support.lua_backend"
local conformance = require "spec.support.conformance.backend"
local tmpdir = require "spec.support.tmpdir"

conformance("composite (state default, Lua route at /mnt/)", function()
  local b = moonbox.composite_backend{ default = moonbox.state_backend{},
                                       routes = { ["/mnt/"] = lua_backend.new{ regex = "native" } } }
  return b, nil, { mounts = { "mnt" } }
end)

-- Every path the suite uses is put below /ws/, a route to a native state backend; results and
-- messages are read back relative to /ws.
local function through_route(strip, inner)
  inner = inner or moonbox.state_backend{}
  local c = moonbox.composite_backend{ default = lua_backend.new(), routes = { ["/ws/"] = inner },
                                       strip_prefix = strip }
  local function into(p)
    if type(p) ~= "string" then return p end
    return "/ws/" .. p
  end
  local function back(p)
    if p == "/ws" then return "/" end
    return (p:gsub("^/ws/", "/"))
  end
  local function entries(list, ...)
    if type(list) ~= "table" then return list, ... end
    local out = {}
    for i, e in ipairs(list) do
      local copy = {}
      for k, v in pairs(e) do copy[k] = v end
      copy.path = back(e.path)
      out[i] = copy
    end
    return out, ...
  end
  local function result(r, ...)
    if type(r) == "table" and r.path then
      local copy = {}
      for k, v in pairs(r) do copy[k] = v end
      copy.path = back(r.path)
      return copy, ...
    end
    return r, ...
  end
  local view = {}
  -- luacheck: push ignore 212 (the methods take self, as the protocol says, and do not use it)
  function view:exists(p) return c:exists(into(p)) end
  function view:read(p, ...) return c:read(into(p), ...) end
  function view:read_bytes(p) return c:read_bytes(into(p)) end
  function view:write(p, ...) return result(c:write(into(p), ...)) end
  function view:edit(p, ...) return result(c:edit(into(p), ...)) end
  function view:ls(p) return entries(c:ls(into(p))) end
  function view:glob(pattern, p)
    if p ~= nil and type(p) ~= "string" then return c:glob(pattern, p) end
    return entries(c:glob(pattern, into(p or "/")))
  end
  function view:grep(pattern, opts)
    if opts == nil then opts = {} end
    if type(opts) ~= "table" then return entries(c:grep(pattern, opts)) end
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    if type(o.path) == "string" then o.path = into(o.path) elseif o.path == nil then o.path = "/ws" end
    return entries(c:grep(pattern, o))
  end
  -- luacheck: pop
  return view
end

conformance("composite (every call through a mounted route)", function() return through_route(true) end)
conformance("composite (every call through a pass-through route)", function() return through_route(false) end)

-- A local_backend mounted at /ws/: the suite's real-directory cases (symlinks out, absolute host
-- paths, files made on disk, file modes) run through the mount.
conformance("composite (every call through a mounted local_backend)", function()
  local dir, remove = tmpdir.make()
  return through_route(true, moonbox.local_backend{ root = dir }), remove, { root = dir }
end)
