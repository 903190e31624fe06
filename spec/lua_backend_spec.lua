-- The protocol suite against the pure-Lua table backend (spec/support/lua_backend.lua): once
-- with its own regex engine (a PCRE subset), once with PCRE2 through moonbox.backend.
local lua_backend = require "spec.support.lua_backend"
local conformance = require "spec.support.conformance.backend"

conformance("lua_backend", function() return lua_backend.new(), nil, { pcre = false } end)

conformance("lua_backend with native regex", function()
  return lua_backend.new{ regex = "native" }, nil, { pcre = true }
end)
