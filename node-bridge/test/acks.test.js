import { test } from 'node:test';
import assert from 'node:assert/strict';

import { AckTracker } from '../src/acks.js';
import { checkEvent } from '../src/protocol.js';

const valid = (events) => events.forEach((e) => assert.deepEqual(checkEvent(e), { ok: e }));

test('a sent message becomes server_ack when the server acknowledges it', () => {
  const t = new AckTracker();
  assert.deepEqual(t.sent('A', 'c'), []);
  const r = t.acked('A');
  valid(r);
  assert.deepEqual(r, [{ type: 'receipt', message_id: 'A', chat: 'c', status: 'server_ack' }]);
  assert.deepEqual(t.dropped(), [], 'nothing left pending');
});

test('an ack that beats the send result is matched when the result arrives', () => {
  const t = new AckTracker();
  assert.deepEqual(t.acked('B'), []);
  assert.equal(t.sent('B', 'c')[0].status, 'server_ack');
  assert.equal(t.acked('E', '479').length, 0);
  assert.equal(t.sent('E', 'c')[0].status, 'error');
});

test('what is unacknowledged when the connection drops is reported unconfirmed', () => {
  const t = new AckTracker();
  t.sent('A', 'c1');
  t.sent('B', 'c2');
  t.acked('A');
  t.sent('C', 'c3');
  t.settled('C');
  const r = t.dropped();
  valid(r);
  assert.deepEqual(r.map((e) => [e.message_id, e.status]), [['B', 'unconfirmed']]);
});

test('the tracker is bounded and reports what it has to let go', () => {
  const t = new AckTracker(2);
  t.sent('A', 'c');
  t.sent('B', 'c');
  assert.deepEqual(t.sent('C', 'c').map((e) => [e.message_id, e.status]), [['A', 'unconfirmed']]);
});
