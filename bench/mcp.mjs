// MCP benchmark (issue 8 item 4): node bench/mcp.mjs [--sandbox namespace|local] [--calls N] [--connects N]
//
// With the official TypeScript SDK client over stdio, on one temporary directory holding a small
// file, against `moonbox mcp` and against @modelcontextprotocol/server-filesystem (the reference
// server), in the same run:
//   connect    spawn the server + initialize, until client.connect() resolves (median of --connects)
//   round trip one tools/call reading the small file (moonbox read_file, the reference's
//              read_text_file), median of --calls after 20 warm-up calls
// Needs `cd spec/mcp && npm ci` and build/moonbox (MOONBOX_EXE overrides). Prints a table and the
// targets: moonbox at most half the reference's round trip and a fraction of its connect time.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const modules = path.join(repo, "spec/mcp/node_modules");
const sdk = (p) => import(pathToFileURL(path.join(modules, "@modelcontextprotocol/sdk/dist/esm", p)).href);
const { Client } = await sdk("client/index.js");
const { StdioClientTransport } = await sdk("client/stdio.js");

const opt = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const sandbox = opt("sandbox", "namespace");
const CALLS = Number(opt("calls", 300));
const CONNECTS = Number(opt("connects", 15));
const exe = path.resolve(process.env.MOONBOX_EXE || path.join(repo, "build/moonbox"));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "moonbox-mcp-bench-"));
fs.writeFileSync(path.join(dir, "small.txt"), "a small file\nread over MCP\n".repeat(10));

const servers = {
  moonbox: {
    params: { command: exe, args: ["mcp", "--root", dir, "--sandbox", sandbox, "--preset", "readonly"] },
    call: { name: "read_file", arguments: { path: "/small.txt" } },
  },
  "server-filesystem": {
    params: { command: process.execPath,
      args: [path.join(modules, "@modelcontextprotocol/server-filesystem/dist/index.js"), dir] },
    call: { name: "read_text_file", arguments: { path: path.join(dir, "small.txt") } },
  },
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

async function open(name) {
  const transport = new StdioClientTransport({ ...servers[name].params, stderr: "ignore" });
  const client = new Client({ name: "moonbox-bench", version: "1.0.0" });
  const t0 = performance.now();
  await client.connect(transport);
  return { client, ms: performance.now() - t0 };
}

async function measure(name) {
  const connects = [];
  for (let i = 0; i < CONNECTS; i++) {
    const { client, ms } = await open(name);
    connects.push(ms);
    await client.close();
  }
  const { client } = await open(name);
  const call = servers[name].call;
  for (let i = 0; i < 20; i++) {
    const r = await client.callTool(call);
    if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
  }
  const trips = [];
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now();
    await client.callTool(call);
    trips.push(performance.now() - t0);
  }
  await client.close();
  return { connect: median(connects), trip: median(trips) };
}

try {
  const results = {};
  for (const name of Object.keys(servers)) results[name] = await measure(name);
  const m = results.moonbox, r = results["server-filesystem"];
  console.log(`MCP over stdio, SDK client, ${CALLS} calls / ${CONNECTS} connects (moonbox --sandbox ${sandbox})`);
  console.log("| server | connect (spawn + initialize), median | tools/call round trip (read small file), median |");
  console.log("|---|---|---|");
  for (const [name, x] of Object.entries(results)) {
    console.log(`| ${name} | ${x.connect.toFixed(1)} ms | ${(x.trip * 1000).toFixed(0)} µs |`);
  }
  const tripRatio = m.trip / r.trip, connectRatio = m.connect / r.connect;
  console.log(`round trip: moonbox ${(tripRatio * 100).toFixed(0)}% of the reference (target <= 50%): `
    + (tripRatio <= 0.5 ? "met" : "NOT met"));
  console.log(`connect: moonbox ${(connectRatio * 100).toFixed(0)}% of the reference (target: a fraction): `
    + (connectRatio < 0.5 ? "met" : "NOT met"));
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
