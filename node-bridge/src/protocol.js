// The bridge protocol as the connector sees it (see bridge-protocol/PROTOCOL.md): reading
// command lines from stdin with the same per-line error kinds as the Rust codec, and the field
// rules of every message, used to check commands and, in tests, the events we emit.

export const PROTOCOL_VERSION = 1;
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export const MEDIA_KINDS = ['image', 'video', 'gif', 'audio', 'voice', 'document', 'sticker', 'location', 'contact', 'poll', 'reaction', 'other'];
const CONNECTION_STATES = ['connecting', 'qr', 'open', 'closed', 'logged_out', 'conflict'];
const RECEIPT_STATUSES = ['server_ack', 'delivered', 'read', 'played', 'error', 'unconfirmed'];
const TYPING_STATES = ['composing', 'recording', 'paused'];

// Field rules: name -> [type, required]. Types: str, uint, bool, any, [str], enum:<list>, obj:<rules>.
const str = (required = true) => ['str', required];
const opt = (t) => [t, false];
const QUOTED = { id: str(), sender: opt('str'), text: opt('str'), from_me: opt('bool') };
const MEDIA = { kind: [MEDIA_KINDS, true], mime: opt('str'), file_name: opt('str'), path: opt('str'), size: opt('uint'), download_error: opt('str') };
const ERROR = { code: str(), message: str(), unconfirmed: opt('bool') };

export const COMMANDS = {
  send_text: { chat: str(), text: str(), reply_to: opt('str') },
  edit: { chat: str(), message_id: str(), text: str() },
  send_media: { chat: str(), path: str(), kind: [MEDIA_KINDS, true], caption: opt('str'), file_name: opt('str'), mime: opt('str') },
  send_poll: { chat: str(), question: str(), options: [['str'], true], selectable_count: opt('uint') },
  send_location: { chat: str(), latitude: ['num', true], longitude: ['num', true], name: opt('str'), address: opt('str') },
  typing: { chat: str(), state: [TYPING_STATES, false] },
  read: { chat: str(), message_ids: [['str'], true], participant: opt('str') },
  chat_info: { chat: str() },
  react: { chat: str(), message_id: str(), emoji: str() },
  delete: { chat: str(), message_id: str() },
  link_by_phone: { phone: str() },
  logout: {},
  shutdown: {},
  ping: {},
};

export const EVENTS = {
  hello: { protocol: ['uint', true], connector: str(), version: str(), capabilities: [['str'], false] },
  status: { state: [CONNECTION_STATES, true], code: opt('uint'), reason: opt('str') },
  qr: { data: str(), expires_in_ms: opt('uint') },
  link_code: { code: str() },
  account: { phone: opt('str'), lid: opt('str'), name: opt('str') },
  lid_mapping: { lid: str(), phone: str() },
  inbound: {
    id: str(), chat: str(), sender: str(), sender_alt: opt('str'), is_group: opt('bool'), from_me: opt('bool'),
    chat_name: opt('str'), sender_is_bot: opt('bool'), edited: opt('bool'),
    push_name: opt('str'), text: opt('str'), media: [MEDIA, false], mentions: [['str'], false], quoted: [QUOTED, false],
    timestamp: ['uint', true],
  },
  receipt: { message_id: str(), chat: str(), status: [RECEIPT_STATUSES, true] },
  result: { id: str(), ok: ['bool', true], data: opt('any'), error: [ERROR, false] },
  heartbeat: { open: ['bool', true], last_frame_ms_ago: opt('uint'), last_message_ms_ago: opt('uint'), open_ms_ago: opt('uint') },
};

function checkValue(value, type, path) {
  if (Array.isArray(type) && type.length === 1) {
    if (!Array.isArray(value)) return `${path} must be a list`;
    for (const [i, v] of value.entries()) {
      const e = checkValue(v, type[0], `${path}[${i}]`);
      if (e) return e;
    }
    return null;
  }
  if (Array.isArray(type)) return type.includes(value) ? null : `${path} must be one of ${type.join(', ')}`;
  if (typeof type === 'object') return checkFields(value, type, path);
  switch (type) {
    case 'str': return typeof value === 'string' ? null : `${path} must be a string`;
    case 'bool': return typeof value === 'boolean' ? null : `${path} must be a boolean`;
    case 'uint': return Number.isInteger(value) && value >= 0 ? null : `${path} must be a non-negative integer`;
    case 'num': return typeof value === 'number' && Number.isFinite(value) ? null : `${path} must be a number`;
    case 'any': return null;
    default: throw new Error(`unknown rule ${type}`);
  }
}

function checkFields(obj, rules, path = '') {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return `${path || 'message'} must be an object`;
  for (const [name, [type, required]] of Object.entries(rules)) {
    const value = obj[name];
    if (value === undefined || value === null) {
      if (required) return `missing field ${path ? `${path}.` : ''}${name}`;
      continue;
    }
    const e = checkValue(value, type, path ? `${path}.${name}` : name);
    if (e) return e;
  }
  return null;
}

/**
 * Classifies one line (a Buffer without its newline) against a message table. Returns
 * `{ ok: message }` or `{ error: kind, detail }` with the kinds of the Rust codec.
 */
export function parseLine(buf, table, { needsId = false } = {}) {
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    return { error: 'invalid_utf8', detail: 'not UTF-8' };
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: 'not_json', detail: e.message };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { error: 'not_an_object', detail: 'not an object' };
  if (typeof value.type !== 'string') return { error: 'missing_type', detail: 'no string "type"' };
  const rules = table[value.type];
  // A command of a kind this bridge does not know still gets its one result (`unsupported`).
  const id = typeof value.id === 'string' ? value.id : undefined;
  if (!rules) return { error: 'unknown_type', detail: `unknown type ${value.type}`, id };
  if (needsId && typeof value.id !== 'string') return { error: 'invalid_message', detail: 'missing field id' };
  const problem = checkFields(value, rules);
  return problem ? { error: 'invalid_message', detail: problem, id } : { ok: value };
}

export const parseCommand = (buf) => parseLine(buf, COMMANDS, { needsId: true });
export const checkEvent = (event) => parseLine(Buffer.from(JSON.stringify(event)), EVENTS);

/**
 * Splits a byte stream into lines of at most `maxBytes`, reporting an oversized line once and
 * skipping to its end (it is never buffered whole).
 */
export class LineSplitter {
  constructor(maxBytes = DEFAULT_MAX_LINE_BYTES) {
    this.maxBytes = maxBytes;
    this.pending = [];
    this.pendingBytes = 0;
    this.discarding = false;
  }

  /** Feeds a chunk; returns [{ line: Buffer } | { tooLong: true }]. */
  push(chunk) {
    const out = [];
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (!this.discarding) {
        if (this.pendingBytes + piece.length > this.maxBytes) {
          this.discarding = true;
          this.pending = [];
          this.pendingBytes = 0;
          out.push({ tooLong: true });
        } else {
          this.pending.push(piece);
          this.pendingBytes += piece.length;
        }
      }
      if (nl === -1) break;
      if (!this.discarding) {
        let line = Buffer.concat(this.pending);
        if (line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
        if (line.some((b) => b !== 0x20 && b !== 0x09)) out.push({ line });
      }
      this.discarding = false;
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
    }
    return out;
  }
}
