#!/usr/bin/env node
// Screenshot a web page with headless Chromium, after waiting for and clicking what it shows.
//
//   node [--experimental-websocket] scripts/page-screenshot.js URL OUT.png [options] [steps]
//
// options:  --size WxH (default 1600x1000)   --timeout SECONDS per step (default 30)
//           --chromium PATH (default $CHROMIUM or /usr/bin/chromium)
// steps, run in order after the page has loaded:
//           --wait EXPR    until the JavaScript expression EXPR is truthy in the page
//           --click EXPR   EXPR yields an element (or a list: its first); scroll it into view and click it
//           --eval EXPR    print EXPR's value (JSON) to stdout
//           --sleep MS     wait MS milliseconds
//
// Only Chromium's DevTools protocol over a WebSocket (Node >= 22 has one; Node 20 needs
// --experimental-websocket) and Node's standard library: no npm package. Chromium runs with
// --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
// --disable-sync --no-first-run and a throw-away --user-data-dir, and is killed at the end.
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function usage(msg) {
  if (msg) console.error(`page-screenshot: ${msg}`);
  console.error('usage: page-screenshot.js URL OUT.png [--size WxH] [--timeout S] [--wait EXPR|--click EXPR|--eval EXPR|--sleep MS]...');
  process.exit(2);
}

const argv = process.argv.slice(2);
if (argv.length < 2) usage();
const [url, out] = argv;
let width = 1600;
let height = 1000;
let timeoutS = 30;
let chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const steps = [];
for (let i = 2; i < argv.length; i += 2) {
  const flag = argv[i];
  const value = argv[i + 1];
  if (value === undefined) usage(`${flag} needs a value`);
  if (flag === '--size') {
    const m = /^(\d+)x(\d+)$/.exec(value);
    if (!m) usage('--size is WxH');
    width = Number(m[1]);
    height = Number(m[2]);
  } else if (flag === '--timeout') timeoutS = Number(value);
  else if (flag === '--chromium') chromium = value;
  else if (['--wait', '--click', '--eval', '--sleep'].includes(flag)) steps.push([flag.slice(2), value]);
  else usage(`unknown option ${flag}`);
}
if (typeof WebSocket !== 'function') {
  console.error('page-screenshot: this Node has no WebSocket; run it as node --experimental-websocket (Node 20) or use Node >= 22');
  process.exit(2);
}
if (!fs.existsSync(chromium)) {
  console.error(`page-screenshot: no Chromium at ${chromium} (Debian: apt-get install -y chromium)`);
  process.exit(3);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'page-screenshot-'));
const browser = spawn(chromium, [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
  '--hide-scrollbars', `--user-data-dir=${profile}`, '--remote-debugging-port=0',
  '--remote-debugging-address=127.0.0.1', `--window-size=${width},${height}`, 'about:blank',
], { stdio: ['ignore', 'ignore', 'pipe'] });

let stderrText = '';
function cleanup() {
  try { browser.kill('SIGKILL'); } catch (e) { /* gone */ }
  try { fs.rmSync(profile, { recursive: true, force: true }); } catch (e) { /* best effort */ }
}
process.on('exit', cleanup);

function devtoolsPort() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Chromium printed no DevTools address in ${timeoutS}s:\n${stderrText}`)), timeoutS * 1000);
    browser.stderr.on('data', (chunk) => {
      stderrText += chunk.toString();
      const m = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(stderrText);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    browser.on('exit', (code) => reject(new Error(`Chromium exited (${code}):\n${stderrText}`)));
  });
}

class Cdp {
  constructor(wsUrl) {
    this.ws = new WebSocket(wsUrl);
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.ws.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.id && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(new Error(`${msg.error.message} ${msg.error.data || ''}`));
        else resolve(msg.result);
      } else if (msg.method) {
        for (const l of this.listeners) l(msg);
      }
    };
  }
  open() {
    return new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = (e) => reject(new Error(`DevTools WebSocket: ${e.message || e}`));
    });
  }
  send(method, params = {}) {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }
  once(method) {
    return new Promise((resolve) => {
      const l = (msg) => {
        if (msg.method === method) {
          this.listeners = this.listeners.filter((x) => x !== l);
          resolve(msg.params);
        }
      };
      this.listeners.push(l);
    });
  }
  async evaluate(expression) {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`page error in ${expression}: ${r.exceptionDetails.exception ? r.exceptionDetails.exception.description : r.exceptionDetails.text}`);
    return r.result.value;
  }
}

async function withTimeout(promise, what) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${timeoutS}s: ${what}`)), timeoutS * 1000); });
  try { return await Promise.race([promise, t]); } finally { clearTimeout(timer); }
}

async function main() {
  const port = await devtoolsPort();
  let target;
  for (let i = 0; i < 50 && !target; i++) {
    const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    target = list.find((t) => t.type === 'page');
    if (!target) await sleep(100);
  }
  if (!target) throw new Error('Chromium has no page target');
  const cdp = new Cdp(target.webSocketDebuggerUrl);
  await cdp.open();
  await cdp.send('Page.enable');
  await cdp.send('Runtime.enable');
  await cdp.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
  const loaded = cdp.once('Page.loadEventFired');
  const nav = await cdp.send('Page.navigate', { url });
  if (nav.errorText) throw new Error(`cannot load ${url}: ${nav.errorText}`);
  await withTimeout(loaded, `loading ${url}`);

  for (const [kind, value] of steps) {
    if (kind === 'sleep') {
      await sleep(Number(value));
    } else if (kind === 'wait') {
      await withTimeout((async () => {
        for (;;) {
          if (await cdp.evaluate(`Boolean(${value})`)) return;
          await sleep(200);
        }
      })(), `waiting for ${value}`);
    } else if (kind === 'eval') {
      console.log(JSON.stringify(await cdp.evaluate(value)));
    } else if (kind === 'click') {
      const box = await withTimeout((async () => {
        for (;;) {
          const b = await cdp.evaluate(`(() => {
            let el = (${value});
            if (el && typeof el.length === 'number' && !el.tagName) el = el[0];
            if (!el) return null;
            el.scrollIntoView({block: 'center'});
            const r = el.getBoundingClientRect();
            return {x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height};
          })()`);
          if (b && b.w > 0 && b.h > 0) return b;
          await sleep(200);
        }
      })(), `an element to click: ${value}`);
      for (const type of ['mouseMoved', 'mousePressed', 'mouseReleased']) {
        await cdp.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
      }
    }
  }
  const shot = await cdp.send('Page.captureScreenshot', { format: 'png' });
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  fs.writeFileSync(out, Buffer.from(shot.data, 'base64'));
  console.error(`page-screenshot: wrote ${out}`);
}

main().then(() => { cleanup(); process.exit(0); }, (err) => {
  console.error(`page-screenshot: ${err.message}`);
  cleanup();
  process.exit(1);
});
