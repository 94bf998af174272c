// Media retention: the same settings and rules as the Rust connectors, applied to node-bridge's
// own `wa-` files only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { DEFAULT_RETENTION, expired, parseDuration, retentionFrom, sweep } from '../src/retention.js';

test('durations read as the Rust connectors read them', () => {
  assert.equal(parseDuration('7d'), 7 * 86400e3);
  assert.equal(parseDuration('1h 30m'), 5400e3);
  assert.equal(parseDuration('45s'), 45e3);
  assert.equal(parseDuration('2weeks'), 14 * 86400e3);
  for (const bad of ['', 'lots', '7', '7 parsecs', 'd7']) assert.equal(parseDuration(bad), null, bad);
});

test('settings, and a bad one said and the default kept', () => {
  const warned = [];
  assert.deepEqual(retentionFrom({}, (w) => warned.push(w)), DEFAULT_RETENTION);
  const set = retentionFrom({ BRIDGEKEEPER_MEDIA_MAX_AGE: '12h', BRIDGEKEEPER_MEDIA_MAX_MB: '5' }, (w) => warned.push(w));
  assert.deepEqual(set, { maxAgeMs: 12 * 3600e3, maxBytes: 5 * 1024 * 1024 });
  const bad = retentionFrom({ BRIDGEKEEPER_MEDIA_MAX_AGE: 'soon', BRIDGEKEEPER_MEDIA_MAX_MB: '1.5' }, (w) => warned.push(w));
  assert.deepEqual(bad, DEFAULT_RETENTION);
  assert.equal(warned.length, 2);
});

test('the old go, then the oldest until the rest fit', () => {
  const day = 86400e3;
  const files = [
    { name: 'old', ageMs: 8 * day, size: 10 },
    { name: 'a', ageMs: 3 * day, size: 60 },
    { name: 'b', ageMs: 2 * day, size: 30 },
    { name: 'new', ageMs: 0, size: 40 },
  ];
  assert.deepEqual(expired(files, { maxAgeMs: 7 * day, maxBytes: 100 }), ['old', 'a']);
  assert.deepEqual(expired(files, DEFAULT_RETENTION), ['old'], 'only the age rule bites at the defaults');
  assert.deepEqual(expired(files, { maxAgeMs: 7 * day, maxBytes: 1 }), ['old', 'a', 'b'], 'the newest stays');
});

test('a sweep removes only its own expired files', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'media-'));
  for (const name of ['wa-old', 'wa-new', 'other-old']) writeFileSync(path.join(dir, name), 'x');
  const hourAgo = (Date.now() - 3600e3) / 1000;
  for (const name of ['wa-old', 'other-old']) utimesSync(path.join(dir, name), hourAgo, hourAgo);
  await sweep(dir, 'wa', { maxAgeMs: 60e3, maxBytes: DEFAULT_RETENTION.maxBytes }, () => {});
  assert.deepEqual(['wa-old', 'wa-new', 'other-old'].map((n) => existsSync(path.join(dir, n))), [false, true, true]);
  await sweep(path.join(dir, 'missing'), 'wa', DEFAULT_RETENTION, () => {});
});
