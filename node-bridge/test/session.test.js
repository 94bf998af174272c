// The session directory: private, creds backed up only from a copy that parses, restored when
// the live file is corrupt, and "not linked" when nothing usable exists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { backupCreds, prepareSession } from '../src/session.js';

const fresh = () => path.join(mkdtempSync(path.join(tmpdir(), 'session-')), 'session');
const CREDS = JSON.stringify({ me: { id: '15550001111@s.whatsapp.net' }, registered: true });

test('a missing directory is created 0700 and reported as not linked', async () => {
  const dir = fresh();
  const r = await prepareSession(dir);
  assert.equal(r.linked, false);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  mkdirSync(path.join(dir, '..', 'open'), { mode: 0o755 });
  chmodSync(path.join(dir, '..', 'open'), 0o755);
  await prepareSession(path.join(dir, '..', 'open'));
  assert.equal(statSync(path.join(dir, '..', 'open')).mode & 0o777, 0o700, 'tightened');
});

test('good creds are backed up; corrupt creds are restored from the backup', async () => {
  const dir = fresh();
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'creds.json'), CREDS);
  assert.equal((await prepareSession(dir)).linked, true);
  assert.equal(readFileSync(path.join(dir, 'creds.json.bak'), 'utf8'), CREDS);
  writeFileSync(path.join(dir, 'creds.json'), '');
  const r = await prepareSession(dir);
  assert.deepEqual([r.linked, r.restored], [true, true]);
  assert.equal(readFileSync(path.join(dir, 'creds.json'), 'utf8'), CREDS);
  assert.match(r.notes.join('\n'), /restored from creds.json.bak/);
});

test('a backup is only refreshed from a copy that parses', async () => {
  const dir = fresh();
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'creds.json'), CREDS);
  await backupCreds(dir);
  writeFileSync(path.join(dir, 'creds.json'), '{"me": {"id": "trunc');
  await backupCreds(dir);
  assert.equal(readFileSync(path.join(dir, 'creds.json.bak'), 'utf8'), CREDS);
});

test('corrupt creds without a backup: not linked, the bad file kept aside', async () => {
  const dir = fresh();
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'creds.json'), '{not json');
  const r = await prepareSession(dir);
  assert.equal(r.linked, false);
  assert.ok(!existsSync(path.join(dir, 'creds.json')));
  assert.ok(readdirSync(dir).some((f) => f.startsWith('creds.json.corrupt-')));
  assert.match(r.notes.join('\n'), /not linked/);
});

test('key files readable by others are tightened to 0600', async () => {
  const dir = fresh();
  mkdirSync(dir, { recursive: true });
  for (const name of ['creds.json', 'session-1555.0.json', 'device-list-1555.json', 'lid-mapping-1555.json']) {
    writeFileSync(path.join(dir, name), name === 'creds.json' ? CREDS : '{}', { mode: 0o644 });
    chmodSync(path.join(dir, name), 0o644);
  }
  const r = await prepareSession(dir);
  for (const name of readdirSync(dir)) {
    assert.equal(statSync(path.join(dir, name)).mode & 0o777, 0o600, name);
  }
  assert.match(r.notes.join('\n'), /4 file\(s\) were readable by others/);
});

test('creds from a link that did not finish are set aside, not retried forever', async () => {
  const dir = fresh();
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'creds.json'), JSON.stringify({ me: { lid: '15550000000@lid' }, registered: false }));
  const r = await prepareSession(dir);
  assert.equal(r.linked, false);
  assert.ok(!existsSync(path.join(dir, 'creds.json')));
  assert.ok(readdirSync(dir).some((f) => f.startsWith('creds.json.incomplete-')));
  assert.match(r.notes.join('\n'), /did not finish/);
});
