// `moonbox mcp` driven by real MCP clients from npm: the official TypeScript SDK (Client +
// StdioClientTransport) and @modelcontextprotocol/inspector-cli.
//   cd spec/mcp && npm ci && node --test        (MOONBOX_EXE overrides ../../build/moonbox)
// Every test works in a fresh temporary root; the commands are harmless; no network.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const exe = path.resolve(process.env.MOONBOX_EXE || path.join(here, "../../build/moonbox"));

function tempRoot() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "moonbox-mcp-test-"));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, ms = 15000) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Starts `moonbox mcp` on a fresh root and connects an SDK client; t.after cleans up.
async function connect(t, { args = ["--preset", "permissive"], capabilities = {}, setup, sandbox = ["--sandbox", "local"] } = {}) {
  const root = tempRoot();
  const transport = new StdioClientTransport({
    command: exe, args: ["mcp", "--root", root, ...sandbox, ...args], stderr: "pipe",
  });
  let stderr = "";
  transport.stderr?.on("data", (d) => { stderr += d; });
  const client = new Client({ name: "moonbox-spec", version: "1.0.0" }, { capabilities });
  if (setup) setup(client);
  await client.connect(transport);
  t.after(async () => {
    await client.close();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return { client, transport, root, stderr: () => stderr };
}

const text = (r) => r.content.map((c) => c.text ?? "").join("");

test("lists the tools with schemas and annotations", async (t) => {
  const { client } = await connect(t);
  assert.equal(client.getServerVersion().name, "moonbox");
  const { tools } = await client.listTools();
  const byName = Object.fromEntries(tools.map((x) => [x.name, x]));
  for (const n of ["ls", "read_file", "write_file", "edit_file", "glob", "grep", "execute",
    "run_in_background", "read_output", "kill_shell", "list_shells"]) {
    assert.ok(byName[n], `tool ${n} is listed`);
    assert.equal(byName[n].inputSchema.type, "object");
  }
  assert.equal(byName.read_file.annotations.readOnlyHint, true);
  assert.equal(byName.write_file.annotations.destructiveHint, true);
  assert.equal(byName.write_file.annotations.idempotentHint, true);
  assert.equal(byName.execute.annotations.readOnlyHint, false);
  assert.deepEqual(byName.read_file.inputSchema.required, ["path"]);
  assert.deepEqual(byName.list_shells.inputSchema.properties, {});
  assert.equal(byName.execute.outputSchema.type, "object");
});

test("calls each tool", async (t) => {
  const { client, root } = await connect(t);
  const call = async (name, args) => {
    const r = await client.callTool({ name, arguments: args });
    assert.equal(r.isError, false, `${name}: ${text(r)}`);
    return r;
  };
  fs.writeFileSync(path.join(root, "a.txt"), "alpha\nbeta\n");
  assert.match(text(await call("read_file", { path: "/a.txt" })), /1\talpha/);
  assert.match(text(await call("write_file", { path: "/dir/b.txt", content: "one\ntwo\n" })), /Wrote 2 lines/);
  assert.equal(fs.readFileSync(path.join(root, "dir/b.txt"), "utf8"), "one\ntwo\n");
  await call("read_file", { path: "/dir/b.txt" });
  assert.match(text(await call("edit_file", { path: "/dir/b.txt", old_string: "two", new_string: "2" })),
    /replaced 1 occurrence/);
  assert.equal(fs.readFileSync(path.join(root, "dir/b.txt"), "utf8"), "one\n2\n");
  assert.match(text(await call("ls", { path: "/" })), /dir\//);
  assert.match(text(await call("glob", { pattern: "**/*.txt" })), /b\.txt/);
  assert.match(text(await call("grep", { pattern: "bet+a", output_mode: "content" })), /a\.txt:2: beta/);
  const ex = await call("execute", { command: "echo from-shell; exit 0" });
  assert.match(text(ex), /from-shell/);
  assert.equal(ex.structuredContent.exit_code, 0);
  assert.equal(ex.structuredContent.timed_out, false);
  const bg = text(await call("run_in_background", { command: "echo bg-out; sleep 30" }));
  const id = bg.match(/background shell (\S+)/)[1];
  assert.match(text(await call("list_shells", {})), new RegExp(`${id}\\s+running`));
  let out = "";
  for (let i = 0; i < 50 && !out.includes("bg-out"); i++) {
    out += text(await call("read_output", { shell_id: id }));
    await sleep(50);
  }
  assert.match(out, /bg-out/);
  assert.match(text(await call("kill_shell", { shell_id: id })), /Killed background shell/);
  const png = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");
  fs.writeFileSync(path.join(root, "p.png"), png);
  const img = await call("read_file", { path: "/p.png" });
  assert.equal(img.content[0].type, "image");
  assert.equal(img.content[0].mimeType, "image/png");
  assert.deepEqual(Buffer.from(img.content[0].data, "base64"), png);
});

test("the default sandbox (namespace where the kernel allows it, else local) runs commands", async (t) => {
  const { client, stderr } = await connect(t, { sandbox: [] });
  const r = await client.callTool({ name: "execute", arguments: { command: "echo $((6 * 7)) > n.txt; cat n.txt" } });
  assert.equal(r.isError, false, text(r));
  assert.match(text(r), /42/);
  assert.match(text(await client.callTool({ name: "read_file", arguments: { path: "/n.txt" } })), /42/);
  assert.match(stderr(), /sandbox (namespace|local)/);
});

test("hashline edits with --edit-format hashline", async (t) => {
  const { client, root } = await connect(t, { args: ["--preset", "permissive", "--edit-format", "hashline"] });
  fs.writeFileSync(path.join(root, "h.txt"), "first\nsecond\n");
  const read = text(await client.callTool({ name: "read_file", arguments: { path: "/h.txt" } }));
  const m = read.match(/^2:(\w+)\|second/m);
  assert.ok(m, read);
  const r = await client.callTool({ name: "hashline_edit",
    arguments: { path: "/h.txt", start_line: 2, start_hash: m[1], new_content: "SECOND" } });
  assert.equal(r.isError, false, text(r));
  assert.equal(fs.readFileSync(path.join(root, "h.txt"), "utf8"), "first\nSECOND\n");
});

test("tool failures are error results; protocol errors are JSON-RPC errors", async (t) => {
  const { client } = await connect(t);
  const r = await client.callTool({ name: "read_file", arguments: { path: "/nope.txt" } });
  assert.equal(r.isError, true);
  assert.match(text(r), /^Error: File '\/nope.txt' not found/);
  const bad = await client.callTool({ name: "read_file", arguments: { path: 3 } });
  assert.equal(bad.isError, true);
  await assert.rejects(client.callTool({ name: "no_such_tool", arguments: {} }), /-32602|Unknown tool/);
  await assert.rejects(client.request({ method: "resources/list", params: {} },
    (await import("@modelcontextprotocol/sdk/types.js")).ListResourcesResultSchema), /-32601|not found/i);
  assert.deepEqual(await client.ping(), {});
});

test("cancelling a call kills its command", async (t) => {
  const { client, root } = await connect(t);
  const ac = new AbortController();
  const pending = client.callTool({ name: "execute", arguments: { command: "sleep 30 & echo $! > pid; wait" } },
    undefined, { signal: ac.signal });
  const pidFile = path.join(root, "pid");
  assert.ok(await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== ""));
  const pid = Number(fs.readFileSync(pidFile, "utf8"));
  assert.ok(alive(pid));
  ac.abort("test cancels");
  await assert.rejects(pending);
  assert.ok(await waitFor(() => !alive(pid)), "the command is gone");
  // the server keeps serving
  assert.equal((await client.callTool({ name: "ls", arguments: {} })).isError, false);
});

test("long execute calls report progress", async (t) => {
  const { client } = await connect(t);
  const seen = [];
  const r = await client.callTool({ name: "execute", arguments: { command: "sleep 3.2; echo done" } }, undefined,
    { onprogress: (p) => seen.push(p) });
  assert.match(text(r), /done/);
  assert.ok(seen.length >= 2, `progress notifications: ${JSON.stringify(seen)}`);
  assert.ok(seen[1].progress > seen[0].progress);
  assert.match(seen[0].message, /still running/);
});

test("two calls in flight: a slow command does not block a read", async (t) => {
  const { client, root } = await connect(t);
  fs.writeFileSync(path.join(root, "quick.txt"), "quick\n");
  const order = [];
  const slow = client.callTool({ name: "execute", arguments: { command: "sleep 2; echo slow" } })
    .then((r) => { order.push("slow"); return r; });
  await sleep(100);
  const quick = await client.callTool({ name: "read_file", arguments: { path: "/quick.txt" } });
  order.push("quick");
  assert.match(text(quick), /quick/);
  assert.match(text(await slow), /slow/);
  assert.deepEqual(order, ["quick", "slow"], "the read was answered while the command ran");
});

test("asks go to the client through elicitation (accept and decline)", async (t) => {
  const asked = [];
  const { client, root } = await connect(t, {
    args: ["--preset", "default"],
    capabilities: { elicitation: {} },
    setup: (c) => c.setRequestHandler(ElicitRequestSchema, async (req) => {
      asked.push(req.params.message);
      return req.params.message.includes("write") ? { action: "accept", content: {} } : { action: "decline" };
    }),
  });
  const w = await client.callTool({ name: "write_file", arguments: { path: "/w.txt", content: "ok\n" } });
  assert.equal(w.isError, false, text(w));
  assert.equal(fs.readFileSync(path.join(root, "w.txt"), "utf8"), "ok\n");
  const x = await client.callTool({ name: "execute", arguments: { command: "touch made" } });
  assert.equal(x.isError, true);
  assert.match(text(x), /decline/);
  assert.equal(fs.existsSync(path.join(root, "made")), false);
  assert.equal(asked.length, 2);
  assert.match(asked[0], /Allow write on '\/w.txt'/);
});

test("without elicitation an ask is refused, naming the rule", async (t) => {
  const { client, root } = await connect(t, { args: ["--preset", "default"] });
  const r = await client.callTool({ name: "write_file", arguments: { path: "/w.txt", content: "no" } });
  assert.equal(r.isError, true);
  assert.match(text(r), /the write default is ask/);
  assert.equal(fs.existsSync(path.join(root, "w.txt")), false);
  const s = await client.callTool({ name: "read_file", arguments: { path: "/.env" } });
  assert.equal(s.isError, true);
  assert.match(text(s), /Protect sensitive files/);
});

test("a client that goes away ends the server and its commands", async (t) => {
  const { client, transport, root, stderr } = await connect(t);
  const serverPid = transport.pid;
  const pending = client.callTool({ name: "execute", arguments: { command: "sleep 30 & echo $! > pid; wait" } })
    .catch(() => null);
  const pidFile = path.join(root, "pid");
  assert.ok(await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, "utf8").trim() !== ""));
  const pid = Number(fs.readFileSync(pidFile, "utf8"));
  await client.close();
  await pending;
  assert.ok(await waitFor(() => !alive(serverPid) && !alive(pid), 10000), "server and command are gone");
  assert.match(stderr(), /the client closed its input; 1 call\(s\) still running/);
});

function inspector(args) {
  // inspector-cli 1.0.3 must run from a directory whose parent holds a package.json.
  const cli = path.join(here, "node_modules/@modelcontextprotocol/inspector-cli/build/index.js");
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { cwd: path.join(here, "node_modules"), timeout: 30000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

test("inspector-cli lists the tools and calls one", async (t) => {
  const root = tempRoot();
  t.after(() => fs.rmSync(root, { recursive: true, force: true }));
  fs.writeFileSync(path.join(root, "hello.txt"), "hello from moonbox\n");
  const server = [exe, "mcp", "--root", root, "--sandbox", "local", "--preset", "readonly"];
  const list = JSON.parse(await inspector([...server, "--method", "tools/list"]));
  const names = list.tools.map((x) => x.name);
  assert.ok(names.includes("read_file") && names.includes("grep"), names.join(","));
  assert.ok(!names.includes("write_file"), "readonly hides write_file");
  const call = JSON.parse(await inspector([...server, "--method", "tools/call", "--tool-name", "read_file",
    "--tool-arg", "path=/hello.txt"]));
  assert.equal(call.isError, false);
  assert.match(call.content[0].text, /hello from moonbox/);
});
