-- busted output handler: plainTerminal's report, plus a closing "N passed, N failed" line and
-- (when MOONBOX_TEST_COUNTS names a file) the counts appended there for the CI total.
return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.plainTerminal"(options)

  busted.subscribe({ "suite", "end" }, function()
    local failed = handler.failuresCount + handler.errorsCount
    local label = os.getenv("MOONBOX_TEST_LABEL") or "busted"
    io.write(string.format("%s: %d passed, %d failed, %d skipped\n", label, handler.successesCount,
      failed, handler.pendingsCount))
    local file = os.getenv("MOONBOX_TEST_COUNTS")
    if file and file ~= "" then
      local f = assert(io.open(file, "a"))
      f:write(string.format("%d %d %d %s\n", handler.successesCount, failed, handler.pendingsCount, label))
      f:close()
    end
    io.flush()
    return nil, true
  end)

  return handler
end
