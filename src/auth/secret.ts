import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config';
import { isInMemory } from '../db/open';

/**
 * The HS256 secret: JWT_SECRET when set; otherwise (development only, config refuses it in
 * production) one generated once and kept in DATA_DIR, so tokens survive a restart and
 * processes sharing DATA_DIR share it.
 */
export function loadJwtSecret(config: Config): Buffer {
  if (config.JWT_SECRET) return Buffer.from(config.JWT_SECRET);
  if (isInMemory(config.DATA_DIR)) return randomBytes(32);
  const path = join(config.DATA_DIR, 'jwt-secret');
  try {
    return Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  mkdirSync(config.DATA_DIR, { recursive: true });
  const secret = randomBytes(48);
  try {
    writeFileSync(path, secret.toString('base64'), { mode: 0o600, flag: 'wx' });
    return secret;
  } catch (error) {
    // Another process wrote it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
    throw error;
  }
}
