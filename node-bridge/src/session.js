// The session directory: Baileys' multi-file auth state, created 0700. `creds.json` holds the
// account's keys; Baileys does not write it atomically, so a SIGKILL mid-write can leave it
// empty. We keep `creds.json.bak`, written only from a copy that parses, and restore it when
// the live file is corrupt.

import { chmod, copyFile, lstat, mkdir, readFile, readdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';

const CREDS = 'creds.json';
const BACKUP = 'creds.json.bak';

async function readJson(file) {
  try {
    const text = await readFile(file, 'utf8');
    if (!text.trim()) return { state: 'empty' };
    const value = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return { state: 'corrupt' };
    return { state: 'ok', value };
  } catch (e) {
    if (e.code === 'ENOENT') return { state: 'missing' };
    if (e instanceof SyntaxError) return { state: 'corrupt' };
    throw e;
  }
}

async function writeAtomic(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}

const isLinked = (creds) => Boolean(creds?.me?.id);

/**
 * Makes the directory private and checks `creds.json`. Returns { linked, restored, notes }.
 * `notes` are human-readable lines for stderr.
 */
export async function prepareSession(dir) {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const mode = (await stat(dir)).mode & 0o777;
  if (mode !== 0o700) await chmod(dir, 0o700);
  const notes = [];
  // Baileys' key files (session-*, creds.json, device-list-*, lid-mapping-*) may have been
  // written world-readable by an older bridge: tighten them once. New ones follow the umask.
  let tightened = 0;
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    const info = await lstat(file);
    if (info.isFile() && (info.mode & 0o077) !== 0) {
      await chmod(file, 0o600);
      tightened += 1;
    }
  }
  if (tightened > 0) notes.push(`session ${dir}: ${tightened} file(s) were readable by others; now 0600`);
  const credsPath = path.join(dir, CREDS);
  const backupPath = path.join(dir, BACKUP);
  const live = await readJson(credsPath);
  // A link that did not finish can leave `me` without `me.id` (WhatsApp confirmed nothing):
  // Baileys cannot connect with it (it throws on the missing id) and would fail at every
  // start. Such a session is set aside and linking starts afresh.
  if (live.state === 'ok' && live.value.me && !live.value.me.id) {
    const aside = `${credsPath}.incomplete-${Date.now()}`;
    await rename(credsPath, aside);
    notes.push(`session ${dir}: creds.json was from a link that did not finish; moved to ${path.basename(aside)}: not linked`);
    return { linked: false, restored: false, notes };
  }
  if (live.state === 'ok') {
    await writeAtomic(backupPath, JSON.stringify(live.value));
    return { linked: isLinked(live.value), restored: false, notes };
  }
  if (live.state === 'missing') {
    notes.push(`session ${dir}: no creds.json, not linked`);
    return { linked: false, restored: false, notes };
  }
  const backup = await readJson(backupPath);
  if (backup.state === 'ok') {
    await rename(credsPath, `${credsPath}.corrupt-${Date.now()}`);
    await copyFile(backupPath, credsPath);
    await chmod(credsPath, 0o600);
    notes.push(`session ${dir}: creds.json was ${live.state}; restored from creds.json.bak`);
    return { linked: isLinked(backup.value), restored: true, notes };
  }
  if (live.state === 'corrupt') await rename(credsPath, `${credsPath}.corrupt-${Date.now()}`);
  notes.push(`session ${dir}: creds.json was ${live.state} and no usable backup exists: not linked`);
  return { linked: false, restored: false, notes };
}

/** After Baileys saved creds: refresh the backup if the live file parses. */
export async function backupCreds(dir) {
  const live = await readJson(path.join(dir, CREDS));
  if (live.state === 'ok') await writeAtomic(path.join(dir, BACKUP), JSON.stringify(live.value));
}
