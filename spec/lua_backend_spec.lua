-- The protocol suite against the pure-Lua table backend (spec/support/lua_backend.lua).
local lua_backend = require "spec.support.lua_backend"

require "spec.support.conformance.backend" ("lua_backend", function()
  return lua_backend.new(), nil, { pcre = false }
end)
