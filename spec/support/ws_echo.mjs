// A loopback WebSocket echo server for spec/websocket_spec.lua (a fake, named as one).
//   node spec/support/ws_echo.mjs --parent PID   prints "PORT <n>"
// Paths: /echo echoes every message (text stays text); /script answers each message "cmd" with
// cmd-specific behaviour: "ping" (sends a ping then "pinged"), "frag" (a fragmented reply),
// "big" (a 200 KiB message), "close" (closes with 4000 "bye"), "drop" (cuts the TCP connection),
// "pongs" (how many pongs it got). /deny answers 403 instead of upgrading. GET /_shutdown exits.
import http from "node:http";
import { accept } from "./ws_server.mjs";

const server = http.createServer((req, res) => {
  if (req.url === "/_shutdown") {
    res.end("bye");
    setImmediate(() => process.exit(0));
    return;
  }
  res.writeHead(404);
  res.end();
});
server.on("upgrade", (req, socket) => {
  if (req.url.startsWith("/deny")) {
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nforbidden");
    return;
  }
  const conn = accept(req, socket, (ps) => (ps.includes("v4.channel.k8s.io") ? "v4.channel.k8s.io" : ps[0]));
  if (!conn) return;
  if (req.url.startsWith("/hello")) conn.send(`hello ${req.headers.authorization || ""}`, 1);
  conn.onMessage((data, opcode) => {
    if (req.url.startsWith("/echo") || req.url.startsWith("/hello")) return conn.send(data, opcode);
    const cmd = data.toString();
    if (cmd === "ping") { conn.ping("x"); conn.send("pinged", 1); }
    else if (cmd === "frag") conn.sendFragmented("one-two-three", 1, 3);
    else if (cmd === "big") conn.send(Buffer.alloc(200 * 1024, 0x61));
    else if (cmd === "close") conn.close(4000, "bye");
    else if (cmd === "drop") socket.destroy();
    else if (cmd === "pongs") conn.send(String(conn.pongs), 1);
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`PORT ${server.address().port}\n`));
const at = process.argv.indexOf("--parent");
if (at > 0) {
  const parent = Number(process.argv[at + 1]);
  setInterval(() => { try { process.kill(parent, 0); } catch { process.exit(0); } }, 500).unref();
}
