// The real connector process: stdout carries only protocol lines whatever Baileys does, it exits
// with the documented code when the connection fails, and it leaves when stdin closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { checkEvent } from '../src/protocol.js';

const entry = fileURLToPath(new URL('../src/index.js', import.meta.url));

function start(args, env = {}) {
  const child = spawn(process.execPath, [entry, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d) => { out.stdout += d; });
  child.stderr.on('data', (d) => { out.stderr += d; });
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out, exited };
}

function protocolLines(stdout) {
  return stdout.split('\n').filter(Boolean).map((line) => {
    const event = JSON.parse(line);
    assert.deepEqual(checkEvent(event), { ok: event }, `not a protocol event: ${line}`);
    return event;
  });
}

test('an unreachable server: clean stdout, a closed status, exit code 11 (restart with backoff)', async () => {
  const session = path.join(mkdtempSync(path.join(tmpdir(), 'nb-')), 'session');
  const { out, exited } = start(['--session', session], { WHATSAPP_WEB_SOCKET_URL: 'ws://127.0.0.1:9/ws', WHATSAPP_DEBUG: '' });
  const code = await exited;
  const events = protocolLines(out.stdout);
  assert.equal(events[0].type, 'hello');
  assert.equal(events[0].protocol, 1);
  assert.deepEqual(events.find((e) => e.type === 'status' && e.reason === 'not_linked')?.state, 'qr');
  assert.equal(events.at(-1).type, 'status');
  assert.equal(events.at(-1).state, 'closed');
  assert.equal(code, 11, out.stderr);
});

test('closing stdin ends the process with exit code 0', async () => {
  const session = path.join(mkdtempSync(path.join(tmpdir(), 'nb-')), 'session');
  // A server that accepts TCP but never answers keeps Baileys "connecting".
  const net = await import('node:net');
  const server = net.createServer(() => {}).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const url = `ws://127.0.0.1:${server.address().port}/ws`;
  const { child, out, exited } = start(['--session', session], { WHATSAPP_WEB_SOCKET_URL: url });
  await new Promise((r) => setTimeout(r, 800));
  child.stdin.end();
  const code = await exited;
  server.close();
  protocolLines(out.stdout);
  assert.equal(code, 0, out.stderr);
});

test('a missing --session is a fatal configuration error (exit 14)', async () => {
  const { exited, out } = start([], { BRIDGEKEEPER_SESSION_DIR: '' });
  assert.equal(await exited, 14);
  assert.match(out.stderr, /--session DIR is required/);
});

test('media past BRIDGEKEEPER_MEDIA_MAX_AGE are removed at start, only node-bridge\'s own', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'nb-'));
  const media = path.join(root, 'media');
  mkdirSync(media);
  for (const name of ['wa-old-1-aa.jpg', 'wa-new-2-bb.jpg', 'someone-else.jpg']) writeFileSync(path.join(media, name), 'x');
  const twoDaysAgo = (Date.now() - 2 * 86400e3) / 1000;
  for (const name of ['wa-old-1-aa.jpg', 'someone-else.jpg']) utimesSync(path.join(media, name), twoDaysAgo, twoDaysAgo);
  const { exited } = start(['--session', path.join(root, 'session'), '--media-dir', media], {
    WHATSAPP_WEB_SOCKET_URL: 'ws://127.0.0.1:9/ws',
    BRIDGEKEEPER_MEDIA_MAX_AGE: '1d',
  });
  await exited;
  assert.deepEqual(['wa-old-1-aa.jpg', 'wa-new-2-bb.jpg', 'someone-else.jpg'].map((n) => existsSync(path.join(media, n))), [false, true, true]);
});
