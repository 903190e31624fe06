-- The protocol suite against local_backend: a fresh temp root per case, under both resolvers.
local moonbox = require "moonbox"
local tmp = require "spec.support.tmpdir"

for _, resolver in ipairs({ "auto", "walk" }) do
  require "spec.support.conformance.backend" ("local_backend (" .. resolver .. ")", function()
    local root, remove = tmp.make()
    local b = assert(moonbox.local_backend{ root = root, resolver = resolver })
    return b, function() b:close(); remove() end, { root = root, pcre = true }
  end)
end
