// Carrying out supervisor commands on a Baileys socket. Every command gets exactly one result.
// Sends (text, edit, media) run one at a time, each with a timeout, so a stuck send cannot hold
// the others forever and ordering is kept.

import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';

export class CommandError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

const MEDIA_CONTENT = {
  image: (buf, c) => ({ image: buf, caption: c.caption, mimetype: c.mime }),
  gif: (buf, c) => ({ video: buf, caption: c.caption, gifPlayback: true, mimetype: c.mime }),
  video: (buf, c) => ({ video: buf, caption: c.caption, mimetype: c.mime }),
  audio: (buf, c) => ({ audio: buf, mimetype: c.mime ?? 'audio/mpeg' }),
  voice: (buf, c) => ({ audio: buf, ptt: true, mimetype: c.mime ?? 'audio/ogg; codecs=opus' }),
  sticker: (buf) => ({ sticker: buf }),
  document: (buf, c) => ({
    document: buf,
    caption: c.caption,
    mimetype: c.mime ?? 'application/octet-stream',
    fileName: c.file_name ?? path.basename(c.path),
  }),
};

// A chat id Baileys can address: a user (phone or LID, optionally with a device), a group
// (new or old style), a broadcast list or a channel. Anything else makes Baileys throw a
// TypeError deep inside ("Cannot destructure property 'user'…"), so it is refused up front.
const CHAT_ID = /^[A-Za-z0-9._:-]+@(?:s\.whatsapp\.net|lid|g\.us|broadcast|newsletter)$/;

export function checkChat(chat) {
  if (typeof chat === 'string' && CHAT_ID.test(chat)) return;
  throw new CommandError(
    'invalid_chat',
    `${JSON.stringify(chat)} is not a WhatsApp chat id (expected <number>@s.whatsapp.net, <id>@lid or <id>@g.us)`,
  );
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CommandError('send_timeout', `${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * `ctx`: { sock() -> socket, waitOpen(ms) -> Promise<boolean>, recent: Map<id, WAMessage>,
 *          sendTimeoutMs, linked() -> bool, waitQr(ms) -> Promise<boolean>, onLinkCode(code),
 *          onShutdown() }
 */
export function createCommandRunner(ctx) {
  let sendChain = Promise.resolve();

  const serialised = (fn) => {
    const run = sendChain.then(fn, fn);
    sendChain = run.catch(() => {});
    return run;
  };

  async function connected() {
    if (!(await ctx.waitOpen(ctx.sendTimeoutMs))) {
      throw new CommandError('not_connected', 'not connected to WhatsApp');
    }
    return ctx.sock();
  }

  const ids = (sent) => ({ message_ids: sent?.key?.id ? [sent.key.id] : [] });

  const handlers = {
    async send_text(c) {
      return serialised(async () => {
        const sock = await connected();
        const quoted = c.reply_to ? ctx.recent.get(c.reply_to) : undefined;
        const sent = await withTimeout(sock.sendMessage(c.chat, { text: c.text }, quoted ? { quoted } : {}), ctx.sendTimeoutMs, 'send');
        return { ...ids(sent), ...(c.reply_to ? { quoted: Boolean(quoted) } : {}) };
      });
    },
    async edit(c) {
      return serialised(async () => {
        const sock = await connected();
        const key = { remoteJid: c.chat, fromMe: true, id: c.message_id };
        return ids(await withTimeout(sock.sendMessage(c.chat, { text: c.text, edit: key }), ctx.sendTimeoutMs, 'edit'));
      });
    },
    async send_media(c) {
      const build = MEDIA_CONTENT[c.kind];
      if (!build) throw new CommandError('unsupported_media', `cannot send media of kind ${c.kind}`);
      let buf;
      try {
        if (!(await stat(c.path)).isFile()) throw new Error('not a file');
        buf = await readFile(c.path);
      } catch (e) {
        throw new CommandError('file_not_found', `cannot read ${c.path}: ${e.message}`);
      }
      return serialised(async () => {
        const sock = await connected();
        return ids(await withTimeout(sock.sendMessage(c.chat, build(buf, c)), ctx.sendTimeoutMs, 'media send'));
      });
    },
    async send_poll(c) {
      if (c.options.length < 2 || c.options.length > 12) {
        throw new CommandError('invalid_poll', 'a poll needs 2 to 12 options');
      }
      return serialised(async () => {
        const sock = await connected();
        const poll = { name: c.question, values: c.options, selectableCount: c.selectable_count ?? 1 };
        return ids(await withTimeout(sock.sendMessage(c.chat, { poll }), ctx.sendTimeoutMs, 'poll send'));
      });
    },
    async send_location(c) {
      return serialised(async () => {
        const sock = await connected();
        const location = { degreesLatitude: c.latitude, degreesLongitude: c.longitude, name: c.name, address: c.address };
        return ids(await withTimeout(sock.sendMessage(c.chat, { location }), ctx.sendTimeoutMs, 'location send'));
      });
    },
    // A reaction names its message by key; an empty emoji takes ours back. A message this
    // process saw carries its own key (sender, participant in a group); else it is someone
    // else's in that chat.
    async react(c) {
      return serialised(async () => {
        const sock = await connected();
        const key = ctx.recent.get(c.message_id)?.key ?? { remoteJid: c.chat, id: c.message_id, fromMe: false };
        await withTimeout(sock.sendMessage(c.chat, { react: { text: c.emoji, key } }), ctx.sendTimeoutMs, 'reaction');
        return null;
      });
    },
    // Only the account's own messages can be taken back: the key says fromMe, and WhatsApp
    // deletes the message for everyone in the chat.
    async delete(c) {
      return serialised(async () => {
        const sock = await connected();
        const key = { remoteJid: c.chat, id: c.message_id, fromMe: true };
        await withTimeout(sock.sendMessage(c.chat, { delete: key }), ctx.sendTimeoutMs, 'delete');
        return null;
      });
    },
    async typing(c) {
      const sock = await connected();
      await sock.sendPresenceUpdate(c.state ?? 'composing', c.chat);
      return null;
    },
    async read(c) {
      const sock = await connected();
      const keys = c.message_ids.map((id) => ({ remoteJid: c.chat, id, participant: c.participant, fromMe: false }));
      await sock.readMessages(keys);
      return null;
    },
    async chat_info(c) {
      const sock = await connected();
      if (c.chat.endsWith('@g.us')) {
        const meta = await sock.groupMetadata(c.chat);
        return { name: meta.subject ?? null, is_group: true, participants: (meta.participants ?? []).map((p) => p.id) };
      }
      return { name: null, is_group: false, participants: [c.chat] };
    },
    async link_by_phone(c) {
      if (ctx.linked()) throw new CommandError('already_linked', 'this session is already linked; log out first to link again');
      const digits = c.phone.replace(/\D/g, '');
      if (digits.length < 7) throw new CommandError('invalid_phone', `${c.phone} is not a phone number with country code`);
      // WhatsApp accepts a code request only once the QR stage has begun.
      if (!(await ctx.waitQr(30_000))) throw new CommandError('not_ready', 'the link stage did not begin');
      const code = await ctx.sock().requestPairingCode(digits);
      ctx.onLinkCode(code);
      return { code };
    },
    async logout() {
      await ctx.sock().logout();
      return null;
    },
    async shutdown() {
      ctx.onShutdown();
      return null;
    },
    async ping() {
      return { pong: true, connected: await ctx.waitOpen(0) };
    },
  };

  /** Runs one parsed command; always resolves to a `result` event. */
  return async function run(command) {
    try {
      if ('chat' in command) checkChat(command.chat);
      const data = await handlers[command.type](command);
      return data === null || data === undefined
        ? { type: 'result', id: command.id, ok: true }
        : { type: 'result', id: command.id, ok: true, data };
    } catch (e) {
      const code = e instanceof CommandError ? e.code : 'send_failed';
      return { type: 'result', id: command.id, ok: false, error: { code, message: String(e?.message ?? e) } };
    }
  };
}
