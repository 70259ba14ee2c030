import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from './errors';
import { canonicalJson } from './canonical-json';

/** Encodes keyset positions as opaque, signed cursors bound to the filters they were issued for. */
export interface CursorCodec {
  encode(position: Array<string | number>, filters: unknown): string;
  /** The position, or 400 when the cursor is tampered with or was issued for other filters. */
  decode(cursor: string, filters: unknown): Array<string | number>;
}

const badCursor = () => new AppError('BAD_REQUEST', 'The cursor is invalid or was issued for a different query');

export function createCursorCodec(secret: Buffer): CursorCodec {
  const key = createHmac('sha256', secret).update('pagination-cursor').digest();
  const filterHash = (filters: unknown) => createHash('sha256').update(canonicalJson(filters)).digest('base64url').slice(0, 16);
  const sign = (payload: string) => createHmac('sha256', key).update(payload).digest('base64url');

  return {
    encode(position, filters) {
      const payload = Buffer.from(JSON.stringify({ p: position, f: filterHash(filters) })).toString('base64url');
      return `${payload}.${sign(payload)}`;
    },
    decode(cursor, filters) {
      const [payload, signature, extra] = cursor.split('.');
      if (!payload || !signature || extra !== undefined) throw badCursor();
      const expected = Buffer.from(sign(payload));
      const given = Buffer.from(signature);
      if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw badCursor();
      let parsed: { p?: unknown; f?: unknown };
      try {
        parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { p?: unknown; f?: unknown };
      } catch {
        throw badCursor();
      }
      if (parsed.f !== filterHash(filters) || !Array.isArray(parsed.p)) throw badCursor();
      return parsed.p as Array<string | number>;
    },
  };
}
