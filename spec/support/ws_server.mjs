// Server-side RFC 6455 for the loopback fakes in spec/support (no dependencies): accept an
// upgrade on a node:http server and exchange frames. Used by the websocket spec's echo server
// and the Kubernetes fake's exec endpoint.
import crypto from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B85";

// Completes the handshake; returns a connection {send(data, opcode), close(code, reason),
// onMessage(fn(data, opcode)), onClose(fn)} or null (a 400 was written) when the request is not
// a valid upgrade. `pick(protocols)` chooses the subprotocol.
export function accept(req, socket, pick = (ps) => ps[0]) {
  const key = req.headers["sec-websocket-key"];
  if (!key || (req.headers.upgrade || "").toLowerCase() !== "websocket") {
    socket.end("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    return null;
  }
  const offered = (req.headers["sec-websocket-protocol"] || "").split(",").map((s) => s.trim()).filter(Boolean);
  const proto = offered.length ? pick(offered) : null;
  const acceptKey = crypto.createHash("sha1").update(key + GUID).digest("base64");
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${acceptKey}\r\n` + (proto ? `Sec-WebSocket-Protocol: ${proto}\r\n` : "") + "\r\n",
  );
  let buf = Buffer.alloc(0);
  let onMessage = () => {};
  let onClose = () => {};
  let partial = null;
  const conn = {
    protocol: proto,
    send(data, opcode = 2) {
      const payload = Buffer.isBuffer(data) ? data : Buffer.from(data);
      let header;
      if (payload.length < 126) header = Buffer.from([0x80 | opcode, payload.length]);
      else if (payload.length <= 0xffff) {
        header = Buffer.alloc(4);
        header[0] = 0x80 | opcode;
        header[1] = 126;
        header.writeUInt16BE(payload.length, 2);
      } else {
        header = Buffer.alloc(10);
        header[0] = 0x80 | opcode;
        header[1] = 127;
        header.writeBigUInt64BE(BigInt(payload.length), 2);
      }
      socket.write(Buffer.concat([header, payload]));
    },
    // sends a message split into fragments (continuation frames)
    sendFragmented(data, opcode = 2, pieces = 3) {
      const payload = Buffer.from(data);
      const step = Math.max(1, Math.ceil(payload.length / pieces));
      for (let i = 0, first = true; i < payload.length; i += step, first = false) {
        const chunk = payload.subarray(i, i + step);
        const fin = i + step >= payload.length ? 0x80 : 0;
        socket.write(Buffer.concat([Buffer.from([fin | (first ? opcode : 0), chunk.length]), chunk]));
      }
    },
    ping(data = "p") {
      const p = Buffer.from(data);
      socket.write(Buffer.concat([Buffer.from([0x89, p.length]), p]));
    },
    close(code = 1000, reason = "") {
      const r = Buffer.from(reason);
      const p = Buffer.alloc(2 + r.length);
      p.writeUInt16BE(code, 0);
      r.copy(p, 2);
      socket.write(Buffer.concat([Buffer.from([0x88, p.length]), p]));
      socket.end();
    },
    onMessage(fn) { onMessage = fn; },
    onClose(fn) { onClose = fn; },
    pongs: 0,
  };
  socket.on("data", (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      if (buf.length < 2) return;
      const fin = buf[0] & 0x80, opcode = buf[0] & 0x0f, masked = buf[1] & 0x80;
      let len = buf[1] & 0x7f, off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (!masked) { socket.destroy(); return; } // clients must mask
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const payload = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + len);
      if (opcode === 0x8) { onClose(payload); socket.end(); return; }
      if (opcode === 0xA) { conn.pongs++; continue; }
      if (opcode === 0x9) { socket.write(Buffer.concat([Buffer.from([0x8a, payload.length]), payload])); continue; }
      if (opcode === 0) { partial.data = Buffer.concat([partial.data, payload]); }
      else partial = { opcode, data: payload };
      if (fin) { onMessage(partial.data, partial.opcode); partial = null; }
    }
  });
  socket.on("close", () => onClose(null));
  return conn;
}
