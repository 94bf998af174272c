// Command handling against a fake socket: each command answered once, sends serialised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { createCommandRunner } from '../src/commands.js';
import { checkEvent } from '../src/protocol.js';

function fakeSocket({ sendDelayMs = 0, failSend = false } = {}) {
  const calls = [];
  let n = 0;
  return {
    calls,
    async sendMessage(jid, content, options) {
      calls.push(['sendMessage', jid, content, options]);
      if (failSend) throw new Error('socket closed');
      await new Promise((r) => setTimeout(r, sendDelayMs));
      calls.push(['sent', content.text]);
      return { key: { id: `S${++n}`, remoteJid: jid, fromMe: true } };
    },
    async sendPresenceUpdate(state, jid) { calls.push(['presence', state, jid]); },
    async readMessages(keys) { calls.push(['read', keys]); },
    async groupMetadata(jid) { return { subject: 'Team', participants: [{ id: 'a@s.whatsapp.net' }, { id: 'b@lid' }] }; },
    async requestPairingCode(digits) { calls.push(['pair', digits]); return 'ABCD2345'; },
    async logout() { calls.push(['logout']); },
  };
}

function runner(sock, over = {}) {
  const events = [];
  const run = createCommandRunner({
    sock: () => sock,
    waitOpen: async () => true,
    waitQr: async () => true,
    linked: () => false,
    recent: new Map([['Q1', { key: { id: 'Q1' }, message: { conversation: 'earlier' } }]]),
    sendTimeoutMs: 1000,
    onLinkCode: (code) => events.push(['link_code', code]),
    onShutdown: () => events.push(['shutdown']),
    ...over,
  });
  return { run: async (c) => { const r = await run(c); assert.deepEqual(checkEvent(r), { ok: r }); return r; }, events };
}

test('send_text answers with the message id and quotes known messages', async () => {
  const sock = fakeSocket();
  const { run } = runner(sock);
  const r = await run({ type: 'send_text', id: '1', chat: 'x@s.whatsapp.net', text: 'hi', reply_to: 'Q1' });
  assert.deepEqual(r, { type: 'result', id: '1', ok: true, data: { message_ids: ['S1'], quoted: true } });
  assert.equal(sock.calls[0][3].quoted.key.id, 'Q1');
  const unknown = await run({ type: 'send_text', id: '2', chat: 'x@s.whatsapp.net', text: 'hi', reply_to: 'nope' });
  assert.equal(unknown.data.quoted, false);
});

test('sends are serialised in arrival order', async () => {
  const sock = fakeSocket({ sendDelayMs: 30 });
  const { run } = runner(sock);
  await Promise.all(['a', 'b', 'c'].map((t, i) => run({ type: 'send_text', id: String(i), chat: 'x@s.whatsapp.net', text: t })));
  const order = sock.calls.map((c) => c[0] === 'sent' ? `done:${c[1]}` : `start:${c[2].text}`);
  assert.deepEqual(order, ['start:a', 'done:a', 'start:b', 'done:b', 'start:c', 'done:c']);
});

test('a stuck send times out with its own error and the next one still runs', async () => {
  const sock = fakeSocket({ sendDelayMs: 300 });
  const { run } = runner(sock, { sendTimeoutMs: 50 });
  const r = await run({ type: 'send_text', id: '1', chat: 'x@s.whatsapp.net', text: 'slow' });
  assert.equal(r.error.code, 'send_timeout');
});

test('failures become error results', async () => {
  const { run } = runner(fakeSocket({ failSend: true }));
  assert.equal((await run({ type: 'send_text', id: '1', chat: 'x@s.whatsapp.net', text: 'a' })).error.code, 'send_failed');
  const offline = runner(fakeSocket(), { waitOpen: async () => false });
  assert.equal((await offline.run({ type: 'send_text', id: '2', chat: 'x@s.whatsapp.net', text: 'a' })).error.code, 'not_connected');
});

test('edit, typing, read, chat_info', async () => {
  const sock = fakeSocket();
  const { run } = runner(sock);
  await run({ type: 'edit', id: '1', chat: 'x@s.whatsapp.net', message_id: 'S9', text: 'fixed' });
  assert.deepEqual(sock.calls[0][2].edit, { remoteJid: 'x@s.whatsapp.net', fromMe: true, id: 'S9' });
  await run({ type: 'typing', id: '2', chat: 'x@s.whatsapp.net' });
  assert.deepEqual(sock.calls.at(-1), ['presence', 'composing', 'x@s.whatsapp.net']);
  await run({ type: 'read', id: '3', chat: 'g@g.us', message_ids: ['M1'], participant: 'p@s.whatsapp.net' });
  assert.deepEqual(sock.calls.at(-1)[1], [{ remoteJid: 'g@g.us', id: 'M1', participant: 'p@s.whatsapp.net', fromMe: false }]);
  const info = await run({ type: 'chat_info', id: '4', chat: 'g@g.us' });
  assert.deepEqual(info.data, { name: 'Team', is_group: true, participants: ['a@s.whatsapp.net', 'b@lid'] });
});

test('react names the message by its key, and an empty emoji takes the reaction back', async () => {
  const sock = fakeSocket();
  const { run } = runner(sock);
  const r = await run({ type: 'react', id: '1', chat: 'x@s.whatsapp.net', message_id: 'Q1', emoji: '👀' });
  assert.deepEqual(r, { type: 'result', id: '1', ok: true });
  assert.deepEqual(sock.calls[0][2], { react: { text: '👀', key: { id: 'Q1' } } });
  await run({ type: 'react', id: '2', chat: 'x@s.whatsapp.net', message_id: 'M7', emoji: '' });
  assert.deepEqual(sock.calls[2][2].react, { text: '', key: { remoteJid: 'x@s.whatsapp.net', id: 'M7', fromMe: false } });
});

test('delete takes back one of our own messages, for everyone', async () => {
  const sock = fakeSocket();
  const { run } = runner(sock);
  const r = await run({ type: 'delete', id: '1', chat: 'x@s.whatsapp.net', message_id: 'S9' });
  assert.deepEqual(r, { type: 'result', id: '1', ok: true });
  assert.deepEqual(sock.calls[0][2], { delete: { remoteJid: 'x@s.whatsapp.net', id: 'S9', fromMe: true } });
});

test('send_media reads the file; a missing file is an explicit error', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'media-'));
  const file = path.join(dir, 'a.pdf');
  writeFileSync(file, 'PDF');
  const sock = fakeSocket();
  const { run } = runner(sock);
  const r = await run({ type: 'send_media', id: '1', chat: 'x@s.whatsapp.net', path: file, kind: 'document' });
  assert.ok(r.ok);
  assert.equal(sock.calls[0][2].fileName, 'a.pdf');
  assert.equal(sock.calls[0][2].document.toString(), 'PDF');
  const missing = await run({ type: 'send_media', id: '2', chat: 'x@s.whatsapp.net', path: path.join(dir, 'nope.png'), kind: 'image' });
  assert.equal(missing.error.code, 'file_not_found');
});

test('link_by_phone returns a code and emits it; refused when already linked', async () => {
  const sock = fakeSocket();
  const { run, events } = runner(sock);
  const r = await run({ type: 'link_by_phone', id: '1', phone: '+1 555 000 1111' });
  assert.deepEqual(r.data, { code: 'ABCD2345' });
  assert.deepEqual(sock.calls.at(-1), ['pair', '15550001111']);
  assert.deepEqual(events, [['link_code', 'ABCD2345']]);
  const linked = runner(fakeSocket(), { linked: () => true });
  assert.equal((await linked.run({ type: 'link_by_phone', id: '2', phone: '15550001111' })).error.code, 'already_linked');
});

test('polls and locations', async () => {
  const sock = fakeSocket();
  const { run } = runner(sock);
  const r = await run({ type: 'send_poll', id: '1', chat: 'x@s.whatsapp.net', question: 'Lunch?', options: ['yes', 'no'] });
  assert.deepEqual(r.data, { message_ids: ['S1'] });
  assert.deepEqual(sock.calls[0][2].poll, { name: 'Lunch?', values: ['yes', 'no'], selectableCount: 1 });
  const bad = await run({ type: 'send_poll', id: '2', chat: 'x@s.whatsapp.net', question: 'q', options: ['only'] });
  assert.equal(bad.error.code, 'invalid_poll');
  await run({ type: 'send_location', id: '3', chat: 'x@s.whatsapp.net', latitude: 52.5, longitude: 13.4, name: 'Berlin' });
  assert.deepEqual(sock.calls.at(-2)[2].location, { degreesLatitude: 52.5, degreesLongitude: 13.4, name: 'Berlin', address: undefined });
});

test('ping, logout and shutdown', async () => {
  const sock = fakeSocket();
  const { run, events } = runner(sock);
  assert.deepEqual((await run({ type: 'ping', id: '1' })).data, { pong: true, connected: true });
  assert.ok((await run({ type: 'logout', id: '2' })).ok);
  assert.deepEqual(sock.calls.at(-1), ['logout']);
  assert.ok((await run({ type: 'shutdown', id: '3' })).ok);
  assert.deepEqual(events, [['shutdown']]);
});

test('a malformed chat id is refused with invalid_chat before Baileys sees it', async () => {
  const sock = fakeSocket();
  sock.sendMessage = async (jid) => {
    // What Baileys does with such an id.
    const { user } = undefined;
    return { key: { id: 'never', remoteJid: jid, user } };
  };
  const { run } = runner(sock);
  for (const chat of ['15551234567', 'not a jid', '1555@s.whatsapp.net.evil', '@g.us', '']) {
    const r = await run({ type: 'send_text', id: `c-${chat}`, chat, text: 'hi' });
    assert.equal(r.ok, false, chat);
    assert.equal(r.error.code, 'invalid_chat', chat);
    assert.ok(r.error.message.includes(JSON.stringify(chat)), r.error.message);
    assert.doesNotMatch(r.error.message, /destructure/);
  }
  const typing = await run({ type: 'typing', id: 't1', chat: 'nope' });
  assert.equal(typing.error.code, 'invalid_chat');
  for (const chat of ['15551234567@s.whatsapp.net', '15551234567:3@s.whatsapp.net', '98765432109876@lid', '120363000000000001@g.us', '15551234567-1600000000@g.us']) {
    const ok = await runner(fakeSocket()).run({ type: 'send_text', id: 'ok', chat, text: 'hi' });
    assert.equal(ok.ok, true, chat);
  }
});
