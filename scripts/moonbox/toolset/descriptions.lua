-- What the model reads: the text of every console tool and the system prompts.
--
-- Edit freely: this file is data. Each tool text has
--   summary  one or two sentences: what the tool does
--   usage    how to use it well (always shown)
--   coding   extra guidance shown only with profile = "coding" (the default)
--   args     one line per parameter; these become the JSON Schema property descriptions
--   returns  what the tool answers, so the model can read results and errors correctly
-- `render(text, profile)` turns one into the tool description. A toolset's
-- `descriptions = { read_file = "..." }` option replaces a description without editing this file.
local M = {}

M.PROFILES = { coding = true, agent = true }
M.DEFAULT_PROFILE = "coding"

M.TOOL_TEXT = {}
local T = M.TOOL_TEXT

T.ls = {
  summary = "List the entries of one directory, with file sizes.",
  usage = "This looks at a single directory only. To find files anywhere below a directory, "
    .. "use `glob` instead; to search inside files, use `grep`.",
  args = { path = "Directory to list; `/` is the workspace root. Defaults to `/`." },
  returns = "`Contents of <path>:` then one line per entry: directories end with `/`, files show "
    .. "`(N bytes)`. An empty directory and a missing one give the same answer: "
    .. "`Directory '<path>' is empty or does not exist`.",
}

local read_common = "`offset` counts lines from 0 (the first line is offset 0) while the numbers shown "
  .. "start at 1, so to continue after shown line N pass offset=N. For a long file, read a first "
  .. "slice (say limit=100) and then the part you need rather than the whole file. To read several "
  .. "files, call this tool once per file; independent reads may run in parallel."

T.read_file = {
  summary = "Read a text file; each line comes back with its line number.",
  usage = "Always read a file before editing it: `edit_file` matches text exactly and refuses to edit "
    .. "a file that changed since you last read it. " .. read_common
    .. " Images and PDFs may come back as content you can look at, when the host enables them.",
  args = {
    path = "File to read.",
    offset = "Line to start from, 0-based (default 0).",
    limit = "Maximum number of lines to return (default 2000).",
  },
  returns = "The lines as `<number><TAB><text>`, with `... (N more lines)` when the file goes on. "
    .. "Failures start with `Error:` and say what to fix (wrong path, offset past the end).",
}

T.hashline_read_file = {
  summary = "Read a text file; each line comes back tagged with its number and a short content hash.",
  usage = "Lines look like `{line_number}:{hash}|{text}`, for example `12:a3|    return x`. The "
    .. "`line_number:hash` pair is the anchor `hashline_edit` needs, so read a file before editing "
    .. "it and re-read after anything else may have changed it. " .. read_common
    .. " Images and PDFs may come back as content you can look at, when the host enables them.",
  args = T.read_file.args,
  returns = "Tagged lines, with `... (N more lines)` when the file goes on. Failures start with "
    .. "`Error:` and say what to fix.",
}

T.write_file = {
  summary = "Create a file, or replace everything in an existing one.",
  usage = "For a change to an existing file prefer the edit tool: it touches only what you name. "
    .. "Missing parent directories are created. Never write secrets or credentials into files.",
  coding = "Create files only when the task needs them; prefer changing the files that exist. Do not "
    .. "add README or other documentation files unless you were asked to.",
  args = { path = "File to write.", content = "The complete new content of the file." },
  returns = "`Wrote N lines to <path>`. The written content counts as read, so you can edit the file "
    .. "next without reading it again.",
}

T.edit_file = {
  summary = "Replace an exact piece of text in a file.",
  usage = "`old_string` must match the file exactly, including indentation, tabs and blank lines, "
    .. "and it must occur once: if it occurs several times, include more surrounding lines to make it "
    .. "unique, or pass replace_all=true to change every occurrence (useful for renames). Copy the "
    .. "text from a fresh `read_file` result without the line-number prefix. Change only what the task "
    .. "needs. `new_string` must differ from `old_string`. If a formatter or another process may have "
    .. "rewritten the file, read it again first.",
  args = {
    path = "File to edit.",
    old_string = "Exact text to find (without line numbers).",
    new_string = "Text to put in its place.",
    replace_all = "Replace every occurrence instead of requiring exactly one (default false).",
  },
  returns = "`Edited <path>: replaced N occurrence(s)`. Recoverable failures start with `Error:`: the "
    .. "text was not found (the nearest lines and how they differ are shown), it was found several "
    .. "times, or the file changed since you read it.",
}

T.hashline_edit = {
  summary = "Edit a file by line anchors from `read_file` instead of repeating the old text.",
  usage = "Name a line by its number and hash from the latest `read_file` output (`12:a3|...` means "
    .. "start_line=12, start_hash=\"a3\"). Replace that line with `new_content`; replace a range by "
    .. "also giving end_line (and end_hash); insert after the line with insert_after=true; delete with "
    .. "an empty `new_content`. `new_content` is the new text without anchors, one line per line. If "
    .. "a hash does not match, the file changed: read it again and use the new anchors. For several "
    .. "edits in one file, work from the bottom up so earlier line numbers stay valid.",
  args = {
    path = "File to edit.",
    start_line = "Line number (1-based) of the first line to replace, or the line to insert after.",
    start_hash = "Hash shown for start_line by read_file.",
    new_content = "Replacement lines (empty to delete).",
    end_line = "Last line of the range to replace (inclusive); omit for one line.",
    end_hash = "Hash shown for end_line (recommended with end_line).",
    insert_after = "Insert new_content after start_line instead of replacing it (default false).",
  },
  returns = "`Edited <path>: <what changed>`, e.g. `Replaced 2 line(s) with 3 line(s) at line 7`. A "
    .. "stale anchor gives `Error: Hash mismatch at line N ...`: re-read the file.",
}

T.glob = {
  summary = "Find files whose paths match a glob pattern.",
  usage = "`*` matches within one path segment, `**` across directories, `?` one character, and "
    .. "braces give alternatives: `**/*.{js,ts}`. Results list the most recently modified files "
    .. "first. Use this to discover files; use `grep` to search their contents.",
  args = {
    pattern = "Glob pattern, e.g. `**/*.py` or `src/*.c`.",
    path = "Directory to search from (default `/`).",
  },
  returns = "`Found N file(s) matching '<pattern>':` and up to 100 paths, then `... and N more` when "
    .. "there are more; or `No files matching '<pattern>' in <path>`.",
}

T.grep = {
  summary = "Search file contents with a regular expression.",
  usage = "Prefer this over running grep or rg through `execute`: it is faster, skips hidden and "
    .. "build directories, and its output is bounded. The pattern is a full regular expression "
    .. "(escape `.`, `(`, `[` and friends to match them literally). Narrow the search with `path` or "
    .. "`glob_pattern` (e.g. `*.py`). Choose the output mode: `files_with_matches` (default) to find "
    .. "where something is, `content` to see the matching lines, `count` for a total.",
  args = {
    pattern = "Regular expression to search for.",
    path = "File or directory to search (default: the whole workspace).",
    glob_pattern = "Only search files matching this glob, e.g. `*.py`.",
    output_mode = "`files_with_matches`, `content` or `count`.",
    ignore_hidden = "Skip hidden files and directories (default true).",
    ignore_case = "Match without regard to case (default false).",
  },
  returns = "<description>`files_with_matches` lists paths under `Files containing '<pattern>':`; "
    .. "`content` lists `path:line: text` under `Matches for '<pattern>':`, each line cut to 100 "
    .. "characters; `count` says `Found N match(es) for '<pattern>'`. Lists stop at 50 entries "
    .. "with `... and N more`. No hits: `No matches for '<pattern>'`.</description>",
}

T.execute = {
  summary = "Run a shell command in the workspace and return its output.",
  usage = "Use it only for what needs a shell: builds, tests, package managers, git. To read, find, "
    .. "search or change files use the dedicated tools, not cat, head, sed, find, grep or echo "
    .. "redirects. Quote paths that contain spaces. Chain dependent steps with `&&`; run independent "
    .. "commands as separate calls. Commands stop after `timeout` seconds (default 120): raise it for "
    .. "long builds, and start servers and watchers with `run_in_background` instead, since they never "
    .. "exit. Redirect very long output to a file and search it with `grep`.",
  coding = "When something fails, read the whole error output before changing anything, reproduce "
    .. "the failure before fixing it, and change one thing at a time; after three failed attempts "
    .. "step back and try another approach. Check which tools are installed before relying on them. "
    .. "With git: make new commits rather than amending, stage specific paths rather than "
    .. "`git add -A`, commit only when asked, and do not use `push --force`, `reset --hard`, "
    .. "`clean -f`, `branch -D` or `--no-verify` unless the user asked for it.",
  args = {
    command = "Shell command to run.",
    timeout = "Seconds before the command is stopped (default 120).",
  },
  returns = "The combined stdout and stderr. A non-zero exit reads `Command failed (exit code N):` "
    .. "followed by the output; a timeout adds `Error: Command timed out` (exit code 124) after the "
    .. "output gathered so far; cut output ends with `... (output truncated)`.",
}

T.run_in_background = {
  summary = "Start a long-running command (a dev server, a watcher) in the background.",
  usage = "Use it for processes that do not exit on their own; `execute` would wait for them until "
    .. "its timeout. Follow the output with `read_output` and stop the process with `kill_shell` "
    .. "when you are done.",
  args = { command = "Shell command to start." },
  returns = "`Started background shell <id> ...` with the id the other background tools take.",
}

T.read_output = {
  summary = "Read what a background shell printed since the last read.",
  usage = "Each call returns only new output, so call it again to follow progress.",
  args = { shell_id = "Id returned by run_in_background." },
  returns = "`[<id>] running` or `[<id>] exited (code N)`, then the new output or `(no new output)`.",
}

T.kill_shell = {
  summary = "Stop a background shell and everything it started.",
  usage = "Stop servers when you are done with them: this frees their ports.",
  args = { shell_id = "Id returned by run_in_background." },
  returns = "`Killed background shell <id>.` or `Background shell <id> was already finished or unknown.`",
}

T.list_shells = {
  summary = "List the background shells with their state.",
  usage = "Use it to find an id you lost track of.",
  args = {},
  returns = "One line per shell: `<id>  running|exited(<code>)  <command>`, or `No background shells.`",
}

-- Tool name -> key of TOOL_TEXT per edit format (read_file differs in hashline mode).
function M.text_key(name, edit_format)
  if name == "read_file" and edit_format == "hashline" then return "hashline_read_file" end
  return name
end

-- The description a tool registers with: summary, usage and (coding profile) the coding block,
-- separated by blank lines; wrapped with a <returns> section when `returns` is set.
function M.render(text, profile)
  profile = profile or M.DEFAULT_PROFILE
  local parts = { text.summary }
  if text.usage and text.usage ~= "" then parts[#parts + 1] = text.usage end
  if profile == "coding" and text.coding and text.coding ~= "" then parts[#parts + 1] = text.coding end
  local body = table.concat(parts, "\n\n")
  if not text.returns or text.returns == "" then return body end
  local returns = text.returns
  if not returns:find("^<description>") then returns = "<description>" .. returns .. "</description>" end
  return "<summary>" .. body .. "</summary>\n<returns>\n" .. returns .. "\n</returns>"
end

M.SYSTEM_PROMPT = [[
## Console Tools

You work in a workspace through file tools (ls, read_file, write_file, edit_file, glob, grep)
and, when they are offered, shell tools (execute, and run_in_background with read_output,
kill_shell and list_shells for long-running processes). Read each tool's description before
using it: read files before you edit them, search with grep and glob rather than the shell, and
treat results that start with `Error:` as something to fix and retry.]]

M.HASHLINE_SYSTEM_PROMPT = [[
## Console Tools — Hashline Edit Mode

You work in a workspace through file tools (ls, read_file, write_file, hashline_edit, glob,
grep) and, when they are offered, shell tools (execute, and run_in_background with read_output,
kill_shell and list_shells for long-running processes). File contents come back in hashline
format: every line is tagged `{line_number}:{hash}|{text}`, where the hash is a short digest of
the line's content. hashline_edit takes those line:hash pairs as anchors, so you never retype the
old text; a hash that no longer matches means the file changed and must be read again. Read each
tool's description before using it, and treat results that start with `Error:` as something to
fix and retry.]]

function M.system_prompt(edit_format)
  if edit_format == "hashline" then return M.HASHLINE_SYSTEM_PROMPT end
  return M.SYSTEM_PROMPT
end

return M
