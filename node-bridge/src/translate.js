// Pure translations from Baileys' shapes to the bridge protocol. No I/O, no Baileys import:
// unit-tested with plain objects shaped like Baileys' (see test/translate.test.js).

/** Exit codes a connector uses to say what the supervisor should do (PROTOCOL.md). */
export const EXIT = { CLEAN: 0, RESTART_NOW: 10, RESTART_BACKOFF: 11, LOGGED_OUT: 12, CONFLICT: 13, FATAL: 14 };

/** WhatsApp disconnect code -> [protocol state, exit code]. */
export function classifyDisconnect(code) {
  switch (code) {
    case 401: // logged out
    case 403: // forbidden
    case 411: // multi-device mismatch
      return ['logged_out', EXIT.LOGGED_OUT];
    case 440: // connection replaced by another client
      return ['conflict', EXIT.CONFLICT];
    case 515: // restart required (normal right after linking)
      return ['closed', EXIT.RESTART_NOW];
    default: // 408, 428, 500, 503, network errors
      return ['closed', EXIT.RESTART_BACKOFF];
  }
}

/** The status code of a Baileys `lastDisconnect.error` (a Boom error), if any. */
export function disconnectCode(lastDisconnect) {
  const err = lastDisconnect?.error;
  return err?.output?.statusCode ?? err?.output?.payload?.statusCode ?? err?.statusCode ?? undefined;
}

/** Peels the wrappers WhatsApp puts around message content. */
export function unwrap(message) {
  let m = message ?? {};
  for (let i = 0; i < 5; i++) {
    const inner =
      m.ephemeralMessage?.message ??
      m.viewOnceMessage?.message ??
      m.viewOnceMessageV2?.message ??
      m.viewOnceMessageV2Extension?.message ??
      m.documentWithCaptionMessage?.message ??
      m.editedMessage?.message;
    if (!inner) break;
    m = inner;
  }
  return m;
}

const MEDIA_FIELDS = [
  ['imageMessage', 'image'],
  ['videoMessage', 'video'],
  ['audioMessage', 'audio'],
  ['documentMessage', 'document'],
  ['stickerMessage', 'sticker'],
];

/**
 * A downloaded file's name: `wa-<message id>-<random>.<ext from the mime type>`. The message id
 * is chosen by the sender's client, so it alone could name another sender's file.
 */
export function mediaFileName(messageId, mime, random) {
  const id = String(messageId ?? '').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return `wa-${id}-${random}${extensionFor(mime)}`;
}

function extensionFor(mime) {
  const sub = (mime ?? '').split(';')[0].split('/')[1];
  if (!sub) return '';
  const map = { jpeg: '.jpg', 'x-m4a': '.m4a', mpeg: '.mp3', quicktime: '.mov', plain: '.txt' };
  return map[sub] ?? `.${sub.replace(/[^a-z0-9]/gi, '').slice(0, 8)}`;
}

/** The downloadable media part of a message: [kind, content] or undefined. */
export function mediaPart(message) {
  const m = unwrap(message);
  for (const [field, kind] of MEDIA_FIELDS) {
    if (m[field]) {
      let k = kind;
      if (kind === 'audio' && m[field].ptt) k = 'voice';
      if (kind === 'video' && m[field].gifPlayback) k = 'gif';
      return [k, m[field]];
    }
  }
  return undefined;
}

function textOf(m) {
  return (
    m.conversation ??
    m.extendedTextMessage?.text ??
    m.imageMessage?.caption ??
    m.videoMessage?.caption ??
    m.documentMessage?.caption ??
    m.pollCreationMessage?.name ??
    m.pollCreationMessageV3?.name ??
    m.reactionMessage?.text ??
    m.locationMessage?.name ??
    m.contactMessage?.displayName ??
    undefined
  );
}

function otherMedia(m) {
  if (m.locationMessage || m.liveLocationMessage) return { kind: 'location' };
  if (m.contactMessage || m.contactsArrayMessage) return { kind: 'contact' };
  if (m.pollCreationMessage || m.pollCreationMessageV3 || m.pollUpdateMessage) return { kind: 'poll' };
  if (m.reactionMessage) return { kind: 'reaction' };
  return undefined;
}

function contextInfo(m) {
  for (const value of Object.values(m)) {
    if (value && typeof value === 'object' && value.contextInfo) return value.contextInfo;
  }
  return undefined;
}

function toNumber(ts) {
  if (ts === undefined || ts === null) return Math.floor(Date.now() / 1000);
  if (typeof ts === 'number') return Math.floor(ts);
  if (typeof ts === 'bigint') return Number(ts);
  if (typeof ts.toNumber === 'function') return ts.toNumber();
  const n = Number(ts);
  return Number.isFinite(n) ? Math.floor(n) : Math.floor(Date.now() / 1000);
}

// proto.Message.ProtocolMessage.Type.MESSAGE_EDIT: a protocol message carrying a new version
// of an earlier message (`key` names it, `editedMessage` is the new content).
const MESSAGE_EDIT = 14;

/** The new content of an edit, unwrapped; undefined for anything else. */
function editedContent(m) {
  const p = m.protocolMessage;
  const type = p?.type === 'MESSAGE_EDIT' ? MESSAGE_EDIT : p?.type;
  return type === MESSAGE_EDIT && p.editedMessage ? unwrap(p.editedMessage) : undefined;
}

const isGroupJid = (jid) => typeof jid === 'string' && jid.endsWith('@g.us');

const bareJid = (jid) => (typeof jid === 'string' ? jid.replace(/:\d+@/, '@') : undefined);

/**
 * One Baileys WAMessage -> an `inbound` event. Everything is forwarded (own messages flagged);
 * the supervisor decides. `media` adds download results ({ path, size } or { download_error });
 * `known.own` is the linked account (Baileys' `sock.user`), to tell a reply to its own message;
 * `known.chatName` a group's subject.
 */
export function toInbound(msg, media = {}, known = {}) {
  const own = known.own ?? {};
  const key = msg.key ?? {};
  const chat = key.remoteJid ?? '';
  const group = isGroupJid(chat);
  const sender = group ? (key.participant ?? msg.participant ?? chat) : chat;
  // v7 carries the other identity in *Alt; older builds in senderPn / participantPn.
  const alt = group
    ? key.participantAlt ?? msg.participantPn ?? key.participantPn
    : key.remoteJidAlt ?? key.senderPn ?? msg.senderPn;
  const outer = unwrap(msg.message);
  // An edit goes on as a message of its own: its stanza id is its own (a gateway drops an id it
  // has seen), its text the new version.
  const edit = editedContent(outer);
  const m = edit ?? outer;
  const event = {
    type: 'inbound',
    id: key.id ?? '',
    chat,
    sender,
    is_group: group,
    from_me: Boolean(key.fromMe),
    timestamp: toNumber(msg.messageTimestamp),
  };
  if (edit) event.edited = true;
  if (group && known.chatName) event.chat_name = known.chatName;
  if (alt && alt !== sender) event.sender_alt = alt;
  if (msg.pushName) event.push_name = msg.pushName;
  const text = textOf(m);
  if (typeof text === 'string') event.text = text;
  const part = mediaPart(msg.message);
  if (part) {
    const [kind, content] = part;
    event.media = { kind };
    if (content.mimetype) event.media.mime = content.mimetype;
    if (content.fileName) event.media.file_name = content.fileName;
    if (media.path) event.media.path = media.path;
    if (Number.isInteger(media.size)) event.media.size = media.size;
    if (media.download_error) event.media.download_error = media.download_error;
  } else {
    const other = otherMedia(m);
    if (other) event.media = other;
  }
  const ctx = contextInfo(m);
  if (ctx?.mentionedJid?.length) event.mentions = [...ctx.mentionedJid];
  if (ctx?.stanzaId) {
    event.quoted = { id: ctx.stanzaId };
    if (ctx.participant) event.quoted.sender = ctx.participant;
    const quotedFrom = bareJid(ctx.participant);
    if (quotedFrom && (quotedFrom === bareJid(own.id) || quotedFrom === bareJid(own.lid))) event.quoted.from_me = true;
    const quotedText = ctx.quotedMessage ? textOf(unwrap(ctx.quotedMessage)) : undefined;
    if (typeof quotedText === 'string') event.quoted.text = quotedText;
  }
  return event;
}

/** LID <-> phone pairs a message reveals: [{ lid, phone }]. */
export function mappingsIn(msg) {
  const key = msg.key ?? {};
  const pairs = [];
  const consider = (a, b) => {
    if (!a || !b) return;
    if (a.endsWith('@lid') && b.endsWith('@s.whatsapp.net')) pairs.push({ type: 'lid_mapping', lid: a, phone: b });
    else if (b.endsWith('@lid') && a.endsWith('@s.whatsapp.net')) pairs.push({ type: 'lid_mapping', lid: b, phone: a });
  };
  consider(key.remoteJid, key.remoteJidAlt ?? key.senderPn);
  consider(key.participant, key.participantAlt ?? key.participantPn);
  return pairs;
}

/** Baileys message status (proto WebMessageInfo.Status) -> receipt status. */
export function receiptStatus(status) {
  switch (status) {
    case 0: return 'error';
    case 2: return 'server_ack';
    case 3: return 'delivered';
    case 4: return 'read';
    case 5: return 'played';
    default: return undefined;
  }
}

/** The account identity from `sock.user` ({ id: '<phone>:<dev>@s.whatsapp.net', lid, name }). */
export function toAccount(user) {
  const event = { type: 'account' };
  if (user?.id) event.phone = bareJid(user.id);
  if (user?.lid) event.lid = bareJid(user.lid);
  if (user?.name) event.name = user.name;
  return event;
}
