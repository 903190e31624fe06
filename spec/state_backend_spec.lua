-- The protocol suite against the in-memory native backend.
local moonbox = require "moonbox"

require "spec.support.conformance.backend" ("state_backend", function() return moonbox.state_backend {} end)
