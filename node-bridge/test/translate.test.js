// Baileys event shapes -> protocol events, for every message kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { checkEvent } from '../src/protocol.js';
import { classifyDisconnect, disconnectCode, mappingsIn, mediaFileName, receiptStatus, toAccount, toInbound, EXIT } from '../src/translate.js';

const PHONE = '15551234567@s.whatsapp.net';
const LID = '98765432109876@lid';
const GROUP = '120363000000000001@g.us';

function msg(message, key = {}) {
  return { key: { remoteJid: PHONE, id: 'M1', fromMe: false, ...key }, message, messageTimestamp: 1767225600, pushName: 'Ana' };
}

function inbound(m, media, known) {
  const event = toInbound(m, media, known);
  assert.deepEqual(checkEvent(event), { ok: event }, 'a valid protocol event');
  return event;
}

test('plain and extended text', () => {
  assert.equal(inbound(msg({ conversation: 'hi' })).text, 'hi');
  const e = inbound(msg({ extendedTextMessage: { text: 'hello @bot', contextInfo: { mentionedJid: ['15550001111@s.whatsapp.net'] } } }));
  assert.equal(e.text, 'hello @bot');
  assert.deepEqual(e.mentions, ['15550001111@s.whatsapp.net']);
  assert.equal(e.push_name, 'Ana');
  assert.equal(e.timestamp, 1767225600);
});

test('quoted replies carry id, sender and text', () => {
  const e = inbound(msg({ extendedTextMessage: { text: 'yes', contextInfo: { stanzaId: 'Q1', participant: '15550001111@s.whatsapp.net', quotedMessage: { conversation: 'really?' } } } }));
  assert.deepEqual(e.quoted, { id: 'Q1', sender: '15550001111@s.whatsapp.net', text: 'really?' });
  // A reply to the account's own message (its device suffix aside) says so.
  const own = { id: '15550001111:7@s.whatsapp.net', lid: '111:7@lid' };
  const mine = toInbound(msg({ extendedTextMessage: { text: 'yes', contextInfo: { stanzaId: 'Q1', participant: '15550001111@s.whatsapp.net' } } }), {}, { own });
  assert.equal(mine.quoted.from_me, true);
  assert.deepEqual(checkEvent(mine), { ok: mine });
  const byLid = toInbound(msg({ extendedTextMessage: { text: 'yes', contextInfo: { stanzaId: 'Q1', participant: '111@lid' } } }), {}, { own });
  assert.equal(byLid.quoted.from_me, true);
  assert.equal(e.quoted.from_me, undefined);
});

test('a group message carries the subject it is known by', () => {
  const e = inbound(msg({ conversation: 'hi' }, { remoteJid: GROUP, participant: PHONE }), {}, { chatName: 'Ops' });
  assert.equal(e.chat_name, 'Ops');
  assert.equal(inbound(msg({ conversation: 'hi' }), {}, { chatName: 'ignored in a DM' }).chat_name, undefined);
});

test('an edit is a message of its own with the new text', () => {
  const e = inbound(msg({ protocolMessage: { type: 14, key: { id: 'M0', remoteJid: PHONE }, editedMessage: { extendedTextMessage: { text: 'fixed', contextInfo: { mentionedJid: [LID] } } } } }, { id: 'E1' }));
  assert.equal(e.id, 'E1');
  assert.equal(e.text, 'fixed');
  assert.equal(e.edited, true);
  assert.deepEqual(e.mentions, [LID]);
  // Other protocol messages (a revoke) are not edits.
  assert.equal(inbound(msg({ protocolMessage: { type: 0, key: { id: 'M0' } } })).edited, undefined);
  assert.equal(inbound(msg({ conversation: 'hi' })).edited, undefined);
});

test('media kinds with captions, mime, file names and download results', () => {
  const image = inbound(msg({ imageMessage: { caption: 'look', mimetype: 'image/jpeg' } }), { path: '/c/M1.jpg', size: 10 });
  assert.deepEqual(image.media, { kind: 'image', mime: 'image/jpeg', path: '/c/M1.jpg', size: 10 });
  assert.equal(image.text, 'look');
  assert.equal(inbound(msg({ audioMessage: { ptt: true, mimetype: 'audio/ogg' } })).media.kind, 'voice');
  assert.equal(inbound(msg({ audioMessage: { mimetype: 'audio/mpeg' } })).media.kind, 'audio');
  assert.equal(inbound(msg({ videoMessage: { gifPlayback: true } })).media.kind, 'gif');
  assert.equal(inbound(msg({ videoMessage: { caption: 'clip' } })).text, 'clip');
  assert.equal(inbound(msg({ stickerMessage: {} })).media.kind, 'sticker');
  const doc = inbound(msg({ documentWithCaptionMessage: { message: { documentMessage: { fileName: 'a.pdf', mimetype: 'application/pdf', caption: 'the file' } } } }), { download_error: 'timeout' });
  assert.deepEqual(doc.media, { kind: 'document', mime: 'application/pdf', file_name: 'a.pdf', download_error: 'timeout' });
  assert.equal(doc.text, 'the file');
  assert.equal(inbound(msg({ locationMessage: { name: 'Home' } })).media.kind, 'location');
  assert.equal(inbound(msg({ contactMessage: { displayName: 'Bo' } })).media.kind, 'contact');
  assert.equal(inbound(msg({ pollCreationMessage: { name: 'Lunch?' } })).text, 'Lunch?');
  assert.equal(inbound(msg({ reactionMessage: { text: '👍' } })).media.kind, 'reaction');
});

test('wrappers are peeled: ephemeral, view once', () => {
  assert.equal(inbound(msg({ ephemeralMessage: { message: { conversation: 'gone soon' } } })).text, 'gone soon');
  assert.equal(inbound(msg({ viewOnceMessageV2: { message: { imageMessage: {} } } })).media.kind, 'image');
});

test('own messages are forwarded and flagged', () => {
  assert.equal(inbound(msg({ conversation: 'me' }, { fromMe: true })).from_me, true);
});

test('a message without content is still forwarded (the supervisor decides)', () => {
  const e = inbound(msg(undefined));
  assert.equal(e.text, undefined);
  assert.equal(e.media, undefined);
});

test('LID senders carry their phone as the alternate id (v7 and older fields)', () => {
  assert.equal(inbound(msg({ conversation: 'x' }, { remoteJid: LID, remoteJidAlt: PHONE })).sender_alt, PHONE);
  assert.equal(inbound(msg({ conversation: 'x' }, { remoteJid: LID, senderPn: PHONE })).sender_alt, PHONE);
  const g = inbound(msg({ conversation: 'x' }, { remoteJid: GROUP, participant: LID, participantAlt: PHONE }));
  assert.deepEqual([g.chat, g.sender, g.sender_alt, g.is_group], [GROUP, LID, PHONE, true]);
  const mappings = mappingsIn(msg({}, { remoteJid: GROUP, participant: LID, participantAlt: PHONE }));
  assert.deepEqual(mappings, [{ type: 'lid_mapping', lid: LID, phone: PHONE }]);
  assert.deepEqual(mappingsIn(msg({}, { remoteJid: PHONE })), []);
});

test('disconnect codes map to states and exit codes', () => {
  assert.deepEqual(classifyDisconnect(401), ['logged_out', EXIT.LOGGED_OUT]);
  assert.deepEqual(classifyDisconnect(440), ['conflict', EXIT.CONFLICT]);
  assert.deepEqual(classifyDisconnect(515), ['closed', EXIT.RESTART_NOW]);
  for (const code of [408, 428, 500, 503, undefined]) assert.deepEqual(classifyDisconnect(code), ['closed', EXIT.RESTART_BACKOFF]);
  assert.equal(disconnectCode({ error: { output: { statusCode: 428 } } }), 428);
  assert.equal(disconnectCode(undefined), undefined);
});

test('receipts and account identity', () => {
  assert.equal(receiptStatus(2), 'server_ack');
  assert.equal(receiptStatus(4), 'read');
  assert.equal(receiptStatus(1), undefined);
  const account = toAccount({ id: '15550001111:7@s.whatsapp.net', lid: '111222333:7@lid', name: 'Bot' });
  assert.deepEqual(account, { type: 'account', phone: '15550001111@s.whatsapp.net', lid: '111222333@lid', name: 'Bot' });
  assert.deepEqual(checkEvent(account), { ok: account });
});

// How long can one inbound line get? WhatsApp caps a text at 65,536 characters; a reply also
// carries the quoted text, and a group message can mention every member (1,024 at most). With
// characters JSON must escape as \uXXXX (6 bytes each) this is the worst case the supervisor's
// connector line limit (4 MiB by default) has to hold.
test('the largest inbound line fits the default connector line limit with room to spare', () => {
  const worst = '\u0001'.repeat(65536);
  const members = Array.from({ length: 1024 }, (_, i) => `${String(15550000000 + i)}@s.whatsapp.net`);
  const m = msg(
    { extendedTextMessage: { text: worst, contextInfo: { mentionedJid: members, stanzaId: 'Q'.repeat(32), participant: PHONE, quotedMessage: { conversation: worst } } } },
    { remoteJid: GROUP, participant: PHONE },
  );
  const line = JSON.stringify(inbound(m)) + '\n';
  const bytes = Buffer.byteLength(line);
  console.log(`largest inbound line: ${bytes} bytes`);
  assert.ok(bytes > 1024 * 1024 * 0.7, 'the measurement is of a large line');
  assert.ok(bytes * 4 < 4 * 1024 * 1024, `${bytes} bytes leaves less than 4x headroom under 4 MiB`);
});

test('a downloaded file is named by its message id and a random part, never the sender alone', () => {
  assert.equal(mediaFileName('3EB0/../x', 'image/jpeg', 'ab12'), 'wa-3EB0____x-ab12.jpg');
  assert.equal(mediaFileName('M1', 'application/pdf; q=1', 'r'), 'wa-M1-r.pdf');
  assert.equal(mediaFileName('M1', undefined, 'r'), 'wa-M1-r');
  assert.notEqual(mediaFileName('M1', 'image/png', 'a'), mediaFileName('M1', 'image/png', 'b'));
});
