// Group subjects, for the `chat_name` of a group's messages. Asked of WhatsApp once per group
// (`groupMetadata`, in bounded time), kept fresh by Baileys' group events, at most `max` groups.
// A group whose subject could not be had is asked again only after `retryMs`.

export class GroupNames {
  /** `fetch(jid)` resolves to Baileys' GroupMetadata ({ subject, … }). */
  constructor(fetch, { max = 1000, retryMs = 600_000, timeoutMs = 2_000, now = Date.now } = {}) {
    this.fetch = fetch;
    this.max = max;
    this.retryMs = retryMs;
    this.timeoutMs = timeoutMs;
    this.now = now;
    this.names = new Map(); // jid -> subject, least recently used first
    this.failed = new Map(); // jid -> when asking last failed
  }

  /** The group's subject, or undefined when WhatsApp did not say (in time). */
  async nameOf(jid) {
    if (this.names.has(jid)) {
      const name = this.names.get(jid);
      this.set(jid, name);
      return name;
    }
    const failedAt = this.failed.get(jid);
    if (failedAt !== undefined && this.now() - failedAt < this.retryMs) return undefined;
    let timer;
    const late = new Promise((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.timeoutMs);
    });
    try {
      const meta = await Promise.race([this.fetch(jid), late]);
      if (typeof meta?.subject === 'string' && meta.subject) {
        this.failed.delete(jid);
        this.set(jid, meta.subject);
        return meta.subject;
      }
    } catch {
      // Not a group we can see, or no answer: the message goes on without a name.
    } finally {
      clearTimeout(timer);
    }
    this.failed.set(jid, this.now());
    if (this.failed.size > this.max) this.failed.delete(this.failed.keys().next().value);
    return undefined;
  }

  /** A subject Baileys reported (a group created, joined or renamed). */
  update(jid, subject) {
    if (typeof jid === 'string' && typeof subject === 'string' && subject) {
      this.failed.delete(jid);
      this.set(jid, subject);
    }
  }

  set(jid, subject) {
    this.names.delete(jid);
    this.names.set(jid, subject);
    if (this.names.size > this.max) this.names.delete(this.names.keys().next().value);
  }
}
