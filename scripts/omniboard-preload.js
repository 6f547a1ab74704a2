// Preloaded into Omniboard by scripts/omniboard (`node -r this-file ...`).
//
// 1. Omniboard calls app.listen(port), which binds every interface, and on EADDRINUSE it quietly
//    retries on port + 1. This makes every TCP listen() bind OMNIBOARD_HOST (default 127.0.0.1)
//    and makes a port that is already taken a fatal error, so the caller's port is the real one.
// 2. Omniboard 2.16.1 plots every metric of a run unless the browser's localStorage holds a
//    selection, so throughput in the tens of thousands flattens the solve rates. Its page gets a
//    small script that, on a browser's first visit, selects the metrics named in the database's
//    `omniboard.settings` document `codeit_plot_metrics` (codeit.recording.omniboard_defaults).
//    Any selection the user makes afterwards is Omniboard's own and is kept.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');

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

const PLOT_SETTING = 'codeit_plot_metrics';
// Omniboard 2.16.1's MetricsPlotView keeps its default selection under `${dbKey}|MetricsPlotView|default`,
// but is never given dbKey: the key it reads is 'undefined|...'; 'default|...' is the one it means.
const PLOT_KEYS = ['undefined|MetricsPlotView|default', 'default|MetricsPlotView|default'];

// Runs in the browser, before Omniboard's own script: synchronous, so it is done before any plot.
function seedPlotSelection(api, setting, keys) {
  try {
    if (keys.some((key) => localStorage.getItem(key) !== null)) return;
    const request = new XMLHttpRequest();
    const query = encodeURIComponent(JSON.stringify({ name: setting }));
    request.open('GET', `${api}/Omniboard.Settings?query=${query}`, false);
    request.send();
    const found = request.status === 200 ? JSON.parse(request.responseText) : [];
    const names = found.length && Array.isArray(found[0].value) ? found[0].value : [];
    if (!names.length) return;
    const options = names.map((name) => ({ label: name, value: name, selected: true }));
    keys.forEach((key) => localStorage.setItem(key, JSON.stringify({ metricNameOptions: options })));
  } catch (e) {
    // the page works as Omniboard made it
  }
}

function pageScript(basePath) {
  const args = [`${basePath}/api/v1`, PLOT_SETTING, PLOT_KEYS].map((a) => JSON.stringify(a).replace(/</g, '\\u003c'));
  return `<script>(${seedPlotSelection.toString()})(${args.join(', ')});</script>`;
}

// Omniboard serves its page with express's res.sendFile(.../web/build/index.html) from the app
// mounted at the database's path; that one response gets the script.
function patchPage() {
  let express;
  try {
    express = require(require.resolve('express', { paths: [path.dirname(process.argv[1] || '.')] }));
  } catch (e) {
    return; // not Omniboard's express: nothing to patch
  }
  const sendFile = express.response.sendFile;
  const page = path.join('web', 'build', 'index.html');
  express.response.sendFile = function sendPage(file, ...rest) {
    if (typeof file === 'string' && path.normalize(file).endsWith(page)) {
      const html = fs.readFileSync(file, 'utf8');
      return this.type('html').send(html.replace('<script', `${pageScript(this.req.baseUrl || '')}<script`));
    }
    return sendFile.call(this, file, ...rest);
  };
}

patchPage();
