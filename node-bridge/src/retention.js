// How long downloaded media are kept: the rules every bridgekeeper connector applies to its own
// files (BRIDGEKEEPER_MEDIA_MAX_AGE, default 7 days; BRIDGEKEEPER_MEDIA_MAX_MB, default 1024),
// here for node-bridge's `wa-` files. The choice is pure (`expired`); `sweep` does the I/O.

import { readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';

export const DEFAULT_RETENTION = { maxAgeMs: 7 * 24 * 3600 * 1000, maxBytes: 1024 * 1024 * 1024 };

const UNITS = {
  s: 1e3, sec: 1e3, secs: 1e3, second: 1e3, seconds: 1e3,
  m: 60e3, min: 60e3, mins: 60e3, minute: 60e3, minutes: 60e3,
  h: 3600e3, hr: 3600e3, hrs: 3600e3, hour: 3600e3, hours: 3600e3,
  d: 86400e3, day: 86400e3, days: 86400e3,
  w: 604800e3, week: 604800e3, weeks: 604800e3,
};

/** `7d`, `12h`, `1h 30m` (the forms the Rust connectors take) in milliseconds, or null. */
export function parseDuration(text) {
  const parts = String(text ?? '').trim().match(/\d+\s*[a-z]+/gi);
  if (!parts || parts.join('').replace(/\s/g, '') !== String(text).replace(/\s/g, '')) return null;
  let total = 0;
  for (const part of parts) {
    const [, n, unit] = part.match(/(\d+)\s*([a-z]+)/i);
    const ms = UNITS[unit.toLowerCase()];
    if (!ms) return null;
    total += Number(n) * ms;
  }
  return total;
}

/** The rules from `env`; a value that cannot be read is reported through `warn`, the default kept. */
export function retentionFrom(env, warn) {
  const rules = { ...DEFAULT_RETENTION };
  const age = env.BRIDGEKEEPER_MEDIA_MAX_AGE?.trim();
  if (age) {
    const ms = parseDuration(age);
    if (ms === null) warn(`media retention: BRIDGEKEEPER_MEDIA_MAX_AGE=${JSON.stringify(age)} is not a duration; 7 days apply`);
    else rules.maxAgeMs = ms;
  }
  const mb = env.BRIDGEKEEPER_MEDIA_MAX_MB?.trim();
  if (mb) {
    if (!/^\d+$/.test(mb)) warn(`media retention: BRIDGEKEEPER_MEDIA_MAX_MB=${JSON.stringify(mb)} is not a whole number; 1024 applies`);
    else rules.maxBytes = Number(mb) * 1024 * 1024;
  }
  return rules;
}

/**
 * Which of `files` ({name, ageMs, size}) to remove: all past the age, then the oldest until the
 * rest fit — never the newest for size (the file just downloaded, which its message names).
 */
export function expired(files, rules) {
  let total = files.reduce((sum, f) => sum + f.size, 0);
  const remove = [];
  const byAge = [...files].sort((a, b) => b.ageMs - a.ageMs);
  for (const [i, f] of byAge.entries()) {
    if (f.ageMs > rules.maxAgeMs || (total > rules.maxBytes && i < byAge.length - 1)) {
      total -= f.size;
      remove.push(f.name);
    }
  }
  return remove;
}

/** Holds `dir`'s files named `<prefix>-…` to `rules`; errors are reported, never thrown. */
export async function sweep(dir, prefix, rules, warn) {
  let names;
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const now = Date.now();
  const files = [];
  for (const name of names.filter((n) => n.startsWith(`${prefix}-`))) {
    try {
      const s = await stat(path.join(dir, name));
      if (s.isFile()) files.push({ name, ageMs: Math.max(0, now - s.mtimeMs), size: s.size });
    } catch {
      // Gone meanwhile.
    }
  }
  for (const name of expired(files, rules)) {
    await unlink(path.join(dir, name)).catch((e) => warn(`media retention: cannot remove a file in ${dir}: ${e.code ?? e.message}`));
  }
}
