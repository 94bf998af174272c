// Owns the process's stdout: only protocol lines may reach it. This module must be imported
// before anything else (ESM evaluates imports in order), so that no library can write to
// stdout before it is guarded.
//
// - process.stdout.write is redirected to stderr; protocol lines use the saved original.
// - console.log/info/debug are dropped unless WHATSAPP_DEBUG is on: libsignal prints whole
//   session objects, key material included, with console.info.
// - console.warn/error go to stderr, strings only (objects are summarised by their type), so
//   an error object carrying keys is never dumped.

import { format } from 'node:util';

const realStdoutWrite = process.stdout.write.bind(process.stdout);
const stderrWrite = process.stderr.write.bind(process.stderr);

export const debugEnabled = /^(1|true|yes|on)$/i.test(process.env.WHATSAPP_DEBUG ?? '');

process.stdout.write = (chunk, encoding, callback) => stderrWrite(chunk, encoding, callback);

function summarise(args) {
  return args
    .map((a) => (typeof a === 'string' || typeof a === 'number' || typeof a === 'boolean' ? String(a) : `[${a?.constructor?.name ?? typeof a}]`))
    .join(' ');
}

const drop = () => {};
console.log = debugEnabled ? (...a) => stderrWrite(format(...a) + '\n') : drop;
console.info = debugEnabled ? (...a) => stderrWrite(format(...a) + '\n') : drop;
console.debug = debugEnabled ? (...a) => stderrWrite(format(...a) + '\n') : drop;
console.trace = drop;
console.dir = drop;
console.warn = (...a) => stderrWrite(`warn: ${summarise(a)}\n`);
console.error = (...a) => stderrWrite(`error: ${summarise(a)}\n`);

/** Writes one protocol event as a line on the real stdout. Returns false when it must wait. */
export function emit(event) {
  return realStdoutWrite(JSON.stringify(event) + '\n');
}

/** Resolves once everything emitted so far has been handed to the OS. */
export function flushStdout() {
  return new Promise((resolve) => realStdoutWrite('', () => resolve()));
}

/** A diagnostic line on stderr (the supervisor records it as a connector_stderr event). */
export function note(message) {
  stderrWrite(`${message}\n`);
}
