-- Loaded by busted before any spec (see .busted): makes `require "moonbox"` the first thing
-- that happens, so the host's and stock lua5.4's module paths are the same for every spec.
require "moonbox"
