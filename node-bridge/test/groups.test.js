// Group subjects for `chat_name`: asked once, refreshed by events, bounded, never blocking long.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { GroupNames } from '../src/groups.js';

test('a subject is asked once and then known; a rename replaces it', async () => {
  const asked = [];
  const g = new GroupNames(async (jid) => {
    asked.push(jid);
    return { subject: 'Ops' };
  });
  assert.equal(await g.nameOf('1@g.us'), 'Ops');
  assert.equal(await g.nameOf('1@g.us'), 'Ops');
  assert.deepEqual(asked, ['1@g.us']);
  g.update('1@g.us', 'Ops (renamed)');
  assert.equal(await g.nameOf('1@g.us'), 'Ops (renamed)');
});

test('a failure or a silence gives no name and is not asked again until the retry time', async () => {
  let clock = 0;
  let calls = 0;
  const g = new GroupNames(
    async () => {
      calls += 1;
      throw new Error('item-not-found');
    },
    { retryMs: 1_000, now: () => clock },
  );
  assert.equal(await g.nameOf('2@g.us'), undefined);
  assert.equal(await g.nameOf('2@g.us'), undefined);
  assert.equal(calls, 1);
  clock = 1_000;
  await g.nameOf('2@g.us');
  assert.equal(calls, 2);
  const silent = new GroupNames(() => new Promise(() => {}), { timeoutMs: 20 });
  assert.equal(await silent.nameOf('3@g.us'), undefined);
});

test('at most max groups are kept, the least recently used going first', async () => {
  const g = new GroupNames(async (jid) => ({ subject: `name of ${jid}` }), { max: 2 });
  await g.nameOf('a@g.us');
  await g.nameOf('b@g.us');
  await g.nameOf('a@g.us');
  await g.nameOf('c@g.us');
  assert.deepEqual([...g.names.keys()], ['a@g.us', 'c@g.us']);
});
