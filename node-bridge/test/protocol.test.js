// The shared protocol vectors (bridge-protocol/vectors/) run through the Node side's parser, so
// both ends agree on what is valid and on the error kind of what is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { COMMANDS, EVENTS, LineSplitter, parseLine } from '../src/protocol.js';

const vectorsDir = fileURLToPath(new URL('../../bridge-protocol/vectors/', import.meta.url));
const load = (file) => readFileSync(vectorsDir + file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const bytes = (v) => (v.line_hex ? Buffer.from(v.line_hex, 'hex') : Buffer.from(v.line, 'utf8'));

/** One vector through the splitter (with its limit) and the parser: 'ok:<type>' or the error kind. */
function outcome(v, table, needsId) {
  const splitter = new LineSplitter(v.max_line_bytes ?? 1024 * 1024);
  const items = splitter.push(Buffer.concat([bytes(v), Buffer.from('\n')]));
  assert.equal(items.length, 1, v.name);
  if (items[0].tooLong) return 'too_long';
  const r = parseLine(items[0].line, table, { needsId });
  return r.ok ? `ok:${r.ok.type}` : r.error;
}

const expected = (v) => (v.expect === 'ok' ? `ok:${v.type}` : v.error);

test('connector command vectors', () => {
  const vectors = load('connector-commands.jsonl');
  assert.ok(vectors.length >= 10);
  for (const v of vectors) assert.equal(outcome(v, COMMANDS, true), expected(v), v.name);
});

test('connector event vectors', () => {
  const vectors = load('connector-events.jsonl');
  assert.ok(vectors.length >= 20);
  for (const v of vectors) assert.equal(outcome(v, EVENTS, false), expected(v), v.name);
});

test('the splitter skips an oversized line arriving in pieces and goes on', () => {
  const s = new LineSplitter(16);
  const items = [];
  const stream = Buffer.concat([Buffer.alloc(100, 0x61), Buffer.from('\n{"a":1}\r\n  \n')]);
  for (let i = 0; i < stream.length; i += 7) items.push(...s.push(stream.subarray(i, i + 7)));
  assert.deepEqual(items.map((i) => (i.tooLong ? 'too_long' : i.line.toString())), ['too_long', '{"a":1}']);
});

test('a line exactly at the limit passes', () => {
  const s = new LineSplitter(8);
  assert.deepEqual(s.push(Buffer.from('12345678\n123456789\n')).map((i) => i.tooLong ?? i.line.toString()), ['12345678', true]);
});

test('a command of an unknown kind keeps its id, so it still gets its one result', () => {
  const r = parseLine(Buffer.from('{"type":"teleport","id":"c9"}'), COMMANDS, { needsId: true });
  assert.deepEqual(r, { error: 'unknown_type', detail: 'unknown type teleport', id: 'c9' });
});
