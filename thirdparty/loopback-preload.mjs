// Preload (`node --import ./loopback-preload.mjs ...`) for third-party servers that listen on
// all interfaces (`app.listen(port)`): every TCP listen is forced onto 127.0.0.1, and the first
// bound address is written as `http://127.0.0.1:PORT` to the file (a FIFO) named by
// $THIRDPARTY_READY, so thirdparty/run.sh learns the port of a `--port 0` / `PORT=0` server
// without sleeping or scraping its logs.
import fs from "node:fs";
import net from "node:net";

const listen = net.Server.prototype.listen;
let reported = false;

net.Server.prototype.listen = function (...args) {
  const cb = typeof args[args.length - 1] === "function" ? args.pop() : undefined;
  const first = args[0];
  let options;
  if (first !== null && typeof first === "object" && !("_handle" in first) && !("fd" in first)) {
    options = first.path ? first : { ...first, host: "127.0.0.1" };
  } else if (first === undefined || typeof first === "number" || /^\d+$/.test(String(first))) {
    options = { port: Number(first ?? 0), host: "127.0.0.1" };
  } else {
    return listen.call(this, ...args, ...(cb ? [cb] : [])); // a pipe path or a handle
  }
  this.once("listening", () => {
    const address = this.address();
    if (reported || !process.env.THIRDPARTY_READY || typeof address !== "object") return;
    reported = true;
    fs.writeFileSync(process.env.THIRDPARTY_READY, `http://127.0.0.1:${address.port}\n`);
  });
  return cb ? listen.call(this, options, cb) : listen.call(this, options);
};
