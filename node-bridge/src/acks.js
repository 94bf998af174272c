// How far each sent message got. A send result means "written to the socket"; the server then
// acknowledges it (an `ack` node), and only then is it known to be on WhatsApp. Messages still
// unacknowledged when the connection drops are reported as `unconfirmed`, never left looking
// like a success.

const LIMIT = 1000;

export class AckTracker {
  constructor(limit = LIMIT) {
    this.limit = limit;
    this.pending = new Map(); // id -> chat, in send order
    this.early = new Map(); // acks that arrived before the send result: id -> error|null
  }

  /** A send result came back for `id`. Returns the receipts to emit now. */
  sent(id, chat) {
    if (this.early.has(id)) {
      const error = this.early.get(id);
      this.early.delete(id);
      return [this.#receipt(id, chat, error ? 'error' : 'server_ack')];
    }
    this.pending.set(id, chat);
    const out = [];
    // Too many unacknowledged messages: the oldest are reported rather than forgotten.
    while (this.pending.size > this.limit) {
      const [oldId, oldChat] = this.pending.entries().next().value;
      this.pending.delete(oldId);
      out.push(this.#receipt(oldId, oldChat, 'unconfirmed'));
    }
    return out;
  }

  /** The server acknowledged `id` (with an error code when it refused it). */
  acked(id, error) {
    if (!this.pending.has(id)) {
      this.early.set(id, error ?? null);
      if (this.early.size > this.limit) this.early.delete(this.early.keys().next().value);
      return [];
    }
    const chat = this.pending.get(id);
    this.pending.delete(id);
    return [this.#receipt(id, chat, error ? 'error' : 'server_ack')];
  }

  /** A later status (delivered, read) also proves the server had it. */
  settled(id) {
    this.pending.delete(id);
  }

  /** The connection dropped: everything still pending is unconfirmed. */
  dropped() {
    const out = [...this.pending.entries()].map(([id, chat]) => this.#receipt(id, chat, 'unconfirmed'));
    this.pending.clear();
    this.early.clear();
    return out;
  }

  #receipt(id, chat, status) {
    return { type: 'receipt', message_id: id, chat, status };
  }
}
