#!/usr/bin/env node
// The drop-in for Hermes' bridge.js. Hermes runs
//   node legacy-bridge.js --port P --session S --mode M [--pair-only] [--pair-json]
// and this hands over to `bridgekeeper legacy` with the same arguments and environment, which
// serves the same HTTP API while supervising node-bridge (src/index.js beside this file).
//
// bridgekeeper is found at $BRIDGEKEEPER_BIN, else on PATH, else in this checkout's
// target/release or target/debug. It gets a stdin pipe from us and stops when that closes, so
// it never outlives this process, however this process ends.

import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findBridgekeeper() {
  if (process.env.BRIDGEKEEPER_BIN) return process.env.BRIDGEKEEPER_BIN;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'bridgekeeper');
    if (executable(candidate)) return candidate;
  }
  for (const build of ['release', 'debug']) {
    const candidate = path.join(here, '..', 'target', build, 'bridgekeeper');
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

const bin = findBridgekeeper();
if (!bin) {
  process.stderr.write('legacy-bridge: cannot find bridgekeeper: install it on PATH or set BRIDGEKEEPER_BIN\n');
  process.exit(1);
}

const child = spawn(bin, ['legacy', '--exit-with-stdin', ...process.argv.slice(2)], {
  stdio: ['pipe', 'inherit', 'inherit'],
  env: {
    ...process.env,
    BRIDGEKEEPER_LEGACY_SCRIPT: fileURLToPath(import.meta.url),
    BRIDGEKEEPER_NODE_BRIDGE: path.join(here, 'src', 'index.js'),
  },
});
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal));
}
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
