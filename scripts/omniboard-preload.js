// Preloaded into Omniboard by scripts/omniboard (`node -r this-file ...`).
//
// Omniboard calls app.listen(port), which binds every interface, and on EADDRINUSE it quietly
// retries on port + 1. This makes every TCP listen() bind OMNIBOARD_HOST (default 127.0.0.1)
// and makes a port that is already taken a fatal error, so the caller's port is the real one.
'use strict';

const net = require('net');

const HOST = process.env.OMNIBOARD_HOST || '127.0.0.1';
const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listen(...args) {
  let patched = args;
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    if (first.path === undefined && first.handle === undefined && first.fd === undefined) {
      patched = [Object.assign({}, first, { host: HOST }), ...args.slice(1)];
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback]): drop any host given, put ours in its place
    const rest = args.slice(1);
    if (typeof rest[0] === 'string' || rest[0] === null || rest[0] === undefined) rest.shift();
    patched = [Number(first), HOST, ...rest];
  }
  this.once('error', (err) => {
    if (err && err.code === 'EADDRINUSE') {
      console.error(`omniboard-preload: ${HOST}:${err.port} is already in use; not retrying on another port`);
      process.exit(98);
    }
  });
  return originalListen.apply(this, patched);
};
