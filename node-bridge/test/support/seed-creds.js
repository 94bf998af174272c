// Writes credentials the local fake WhatsApp server accepts: fresh keys with `me` set to the
// server's self JID and `registered` true. Used by the end-to-end tests (Rust and Node).
//   node test/support/seed-creds.js SESSION_DIR SELF_JID
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BufferJSON, initAuthCreds } from 'baileys';

const [dir, selfJid] = process.argv.slice(2);
if (!dir || !selfJid) {
  process.stderr.write('usage: seed-creds.js SESSION_DIR SELF_JID\n');
  process.exit(2);
}
const creds = initAuthCreds();
creds.me = { id: selfJid };
creds.registered = true;
await mkdir(dir, { recursive: true, mode: 0o700 });
await writeFile(path.join(dir, 'creds.json'), JSON.stringify(creds, BufferJSON.replacer), { mode: 0o600 });
