// The Baileys WhatsApp connector for bridgekeeper. It speaks the bridge protocol on stdio
// (bridge-protocol/PROTOCOL.md), forwards every message it sees and sends only what it is told.
// Every access decision and every reconnect decision belongs to the supervisor: on a close it
// reports the status and exits with the code for the case.
//
//   node src/index.js [--session DIR] [--media-dir DIR]   (session default: $BRIDGEKEEPER_SESSION_DIR)
//   env: WHATSAPP_WEB_SOCKET_URL (tests: the fake server), WHATSAPP_SEND_TIMEOUT_MS (60000),
//        WHATSAPP_DEBUG (console + Baileys logs at debug level on stderr)

import { debugEnabled, emit, flushStdout, note } from './stdio.js'; // first: guards stdout
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import makeWASocket, { Browsers, downloadMediaMessage, makeCacheableSignalKeyStore, useMultiFileAuthState } from 'baileys';

import { AckTracker } from './acks.js';
import { createCommandRunner } from './commands.js';
import { GroupNames } from './groups.js';
import { LineSplitter, PROTOCOL_VERSION, parseCommand } from './protocol.js';
import { retentionFrom, sweep } from './retention.js';
import { backupCreds, prepareSession } from './session.js';
import { EXIT, classifyDisconnect, disconnectCode, mappingsIn, mediaFileName, mediaPart, receiptStatus, toAccount, toInbound } from './translate.js';

// Every file this process creates — Baileys' key files above all — is private to its owner.
process.umask(0o077);

const VERSION = '0.1.0';
const RECENT_MESSAGES = 500;
const MEDIA_TIMEOUT_MS = 60_000;

const { values: args } = parseArgs({
  options: {
    session: { type: 'string' },
    'media-dir': { type: 'string' },
    'max-line-bytes': { type: 'string' },
  },
  strict: true,
});
// The supervisor names (and locks) the session directory; --session overrides it.
const sessionArg = args.session ?? process.env.BRIDGEKEEPER_SESSION_DIR;
if (!sessionArg) {
  note('node-bridge: --session DIR is required (or BRIDGEKEEPER_SESSION_DIR)');
  process.exit(EXIT.FATAL);
}
const sessionDir = path.resolve(sessionArg);
const mediaDir = path.resolve(args['media-dir'] ?? path.join(sessionDir, '..', 'media'));
const sendTimeoutMs = Number(process.env.WHATSAPP_SEND_TIMEOUT_MS ?? 60_000);
const retention = retentionFrom(process.env, note);
const tidyMedia = () => sweep(mediaDir, 'wa', retention, note);
// At start (before the connection, so the rules hold however soon it ends), then the age rule
// between downloads; a download sweeps too, so the size rule holds at once.
await tidyMedia();
setInterval(tidyMedia, 10 * 60 * 1000).unref();
const logger = pino({ level: debugEnabled ? 'debug' : 'warn' }, pino.destination(2));

emit({
  type: 'hello',
  protocol: PROTOCOL_VERSION,
  connector: 'whatsapp',
  version: VERSION,
  capabilities: ['send_text', 'edit', 'send_media', 'send_poll', 'send_location', 'react', 'delete', 'typing', 'read', 'chat_info', 'link_by_phone', 'logout'],
});

// ---- session ---------------------------------------------------------------------------------

let session;
try {
  session = await prepareSession(sessionDir);
} catch (e) {
  note(`node-bridge: cannot use session directory ${sessionDir}: ${e.message}`);
  emit({ type: 'status', state: 'closed', reason: `session directory unusable: ${e.message}` });
  await flushStdout();
  process.exit(EXIT.FATAL);
}
for (const line of session.notes) note(`node-bridge: ${line}`);
let linked = session.linked;
if (!linked) emit({ type: 'status', state: 'qr', reason: 'not_linked' });

const { state: auth, saveCreds } = await useMultiFileAuthState(sessionDir);
let credsSaving = Promise.resolve();
const saveAndBackUp = () => {
  credsSaving = credsSaving.then(async () => {
    await saveCreds();
    await backupCreds(sessionDir);
  }).catch((e) => note(`node-bridge: saving credentials failed: ${e.message}`));
  return credsSaving;
};

// ---- socket ----------------------------------------------------------------------------------

const recent = new Map(); // message id -> WAMessage, for quoting and Baileys' retry getMessage
const remember = (msg) => {
  if (!msg?.key?.id) return;
  recent.delete(msg.key.id);
  recent.set(msg.key.id, msg);
  if (recent.size > RECENT_MESSAGES) recent.delete(recent.keys().next().value);
};

const socketOptions = {
  auth: { creds: auth.creds, keys: makeCacheableSignalKeyStore(auth.keys, logger) },
  logger,
  browser: Browsers.ubuntu('Chrome'),
  markOnlineOnConnect: false, // keep the phone's notifications
  syncFullHistory: false,
  getMessage: async (key) => recent.get(key.id)?.message ?? undefined,
};
if (process.env.WHATSAPP_WEB_SOCKET_URL) socketOptions.waWebSocketUrl = process.env.WHATSAPP_WEB_SOCKET_URL;
// Baileys pings the server this often (default 30 s); the server's answers are frames.
if (process.env.WHATSAPP_KEEPALIVE_MS) socketOptions.keepAliveIntervalMs = Number(process.env.WHATSAPP_KEEPALIVE_MS);
const sock = makeWASocket(socketOptions);

let open = false;
let stopping = false;
const acks = new AckTracker();
const emitAll = (events) => events.forEach(emit);
// The server's ack of each sent message (Baileys itself only acts on failed acks).
sock.ws.on('CB:ack,class:message', (node) => {
  if (node?.attrs?.id) emitAll(acks.acked(node.attrs.id, node.attrs.error));
});
// Liveness (PROTOCOL.md): when the server last sent anything and when the last message came,
// reported as a heartbeat; the supervisor decides whether an open connection has gone deaf.
const HEARTBEAT_MS = Number(process.env.BRIDGEKEEPER_HEARTBEAT_MS ?? 15_000);
const seen = { frame: undefined, message: undefined, opened: undefined };
sock.ws.on('frame', () => { seen.frame = Date.now(); });
const heartbeat = setInterval(() => {
  const now = Date.now();
  const ago = (name, t) => (t === undefined ? {} : { [name]: Math.max(0, now - t) });
  emit({
    type: 'heartbeat',
    open,
    ...(open ? ago('last_frame_ms_ago', seen.frame) : {}),
    ...(open ? ago('last_message_ms_ago', seen.message) : {}),
    ...(open && seen.opened !== undefined ? { open_ms_ago: now - seen.opened } : {}),
  });
}, HEARTBEAT_MS);
heartbeat.unref();
let qrCount = 0;
const waiters = { open: new Set(), qr: new Set() };
const wake = (set) => {
  for (const resolve of set) resolve(true);
  set.clear();
};
const waitFor = (set, ready, ms) =>
  ready() ? Promise.resolve(true)
    : ms <= 0 ? Promise.resolve(false)
      : new Promise((resolve) => {
        const timer = setTimeout(() => { set.delete(done); resolve(false); }, ms);
        const done = (v) => { clearTimeout(timer); resolve(v); };
        set.add(done);
      });

async function exit(code) {
  if (stopping && code !== EXIT.CLEAN) return;
  stopping = true;
  await credsSaving;
  await flushStdout();
  process.exit(code);
}

sock.ev.on('creds.update', () => saveAndBackUp());

sock.ev.on('connection.update', (update) => {
  const { connection, lastDisconnect, qr } = update;
  if (qr) {
    qrCount += 1;
    // WhatsApp shows the first code for 60 s and each refresh for 20 s.
    emit({ type: 'qr', data: qr, expires_in_ms: qrCount === 1 ? 60_000 : 20_000 });
    wake(waiters.qr);
  }
  if (connection === 'connecting') emit({ type: 'status', state: 'connecting' });
  if (connection === 'open') {
    open = true;
    linked = true;
    // Idle times count from this connection: nothing from before it.
    seen.opened = Date.now();
    seen.frame = undefined;
    seen.message = undefined;
    emit({ type: 'status', state: 'open' });
    emit(toAccount(sock.user));
    wake(waiters.open);
  }
  if (connection === 'close') {
    open = false;
    emitAll(acks.dropped());
    if (stopping) return;
    const code = disconnectCode(lastDisconnect);
    const [state, exitCode] = classifyDisconnect(code);
    const status = { type: 'status', state };
    if (Number.isInteger(code)) status.code = code;
    const reason = lastDisconnect?.error?.message;
    if (reason) status.reason = String(reason).slice(0, 200);
    emit(status);
    void exit(exitCode);
  }
});

sock.ev.on('lid-mapping.update', (mapping) => {
  if (mapping?.lid && mapping?.pn) emit({ type: 'lid_mapping', lid: mapping.lid, phone: mapping.pn });
});

sock.ev.on('messages.update', (updates) => {
  for (const { key, update } of updates ?? []) {
    const status = receiptStatus(update?.status);
    if (key?.fromMe && key.id && status) {
      acks.settled(key.id);
      emit({ type: 'receipt', message_id: key.id, chat: key.remoteJid ?? '', status });
    }
  }
});

// Messages are emitted in arrival order; a media download holds the ones behind it.
let inboundChain = Promise.resolve();
sock.ev.on('messages.upsert', ({ messages }) => {
  if (messages?.length) seen.message = Date.now();
  for (const msg of messages ?? []) {
    remember(msg);
    inboundChain = inboundChain.then(() => forward(msg)).catch((e) => note(`node-bridge: cannot forward a message: ${e.message}`));
  }
});

// Group subjects for the messages' `chat_name` (the chat info Hermes shows for a group).
const groupNames = new GroupNames((jid) => sock.groupMetadata(jid));
sock.ev.on('groups.upsert', (groups) => {
  for (const g of groups ?? []) groupNames.update(g.id, g.subject);
});
sock.ev.on('groups.update', (updates) => {
  for (const u of updates ?? []) groupNames.update(u.id, u.subject);
});

async function forward(msg) {
  for (const mapping of mappingsIn(msg)) emit(mapping);
  const media = mediaPart(msg.message) ? await download(msg) : {};
  const chat = msg.key?.remoteJid;
  const chatName = chat?.endsWith('@g.us') ? await groupNames.nameOf(chat) : undefined;
  emit(toInbound(msg, media, { own: sock.user ?? {}, chatName }));
}

async function download(msg) {
  try {
    const buffer = await Promise.race([
      downloadMediaMessage(msg, 'buffer', {}, { logger, reuploadRequest: sock.updateMediaMessage }),
      new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out after ${MEDIA_TIMEOUT_MS} ms`)), MEDIA_TIMEOUT_MS)),
    ]);
    await mkdir(mediaDir, { recursive: true, mode: 0o700 });
    const [, content] = mediaPart(msg.message);
    // The message id is the sender's to choose: a random part keeps one sender's file from
    // replacing another's, and 'wx' refuses to write over anything that is there.
    const file = path.join(mediaDir, mediaFileName(msg.key.id, content?.mimetype, randomBytes(8).toString('hex')));
    await writeFile(file, buffer, { mode: 0o600, flag: 'wx' });
    await tidyMedia();
    return { path: file, size: buffer.length };
  } catch (e) {
    return { download_error: String(e?.message ?? e).slice(0, 200) };
  }
}

// ---- commands from the supervisor --------------------------------------------------------------

const run = createCommandRunner({
  sock: () => sock,
  waitOpen: (ms) => waitFor(waiters.open, () => open, ms),
  waitQr: (ms) => waitFor(waiters.qr, () => qrCount > 0, ms),
  linked: () => linked,
  recent,
  sendTimeoutMs,
  onLinkCode: (code) => emit({ type: 'link_code', code }),
  onShutdown: () => setImmediate(() => void shutdown()),
});

async function shutdown() {
  if (stopping) return;
  stopping = true;
  await credsSaving;
  try {
    sock.end(undefined);
  } catch {
    // already closed
  }
  await flushStdout();
  process.exit(EXIT.CLEAN);
}

const splitter = new LineSplitter(Number(args['max-line-bytes'] ?? 0) || undefined);
process.stdin.on('data', (chunk) => {
  for (const item of splitter.push(chunk)) {
    if (item.tooLong) {
      note('node-bridge: a command line over the size limit was skipped');
      continue;
    }
    const parsed = parseCommand(item.line);
    if (parsed.error) {
      note(`node-bridge: bad command line (${parsed.error}): ${parsed.detail}`);
      const code = parsed.error === 'unknown_type' ? 'unsupported' : 'invalid_command';
      if (parsed.id) emit({ type: 'result', id: parsed.id, ok: false, error: { code, message: parsed.detail } });
      continue;
    }
    run(parsed.ok).then((result) => {
      emit(result);
      // A send's result means "written"; track it until the server acknowledges it.
      const chat = parsed.ok.chat;
      for (const id of result.ok ? (result.data?.message_ids ?? []) : []) emitAll(acks.sent(id, chat));
    });
  }
});
// The contract: when stdin closes (the supervisor stopped or died), save and leave.
process.stdin.on('end', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
