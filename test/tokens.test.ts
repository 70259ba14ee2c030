import { createHmac, generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type jwt from 'jsonwebtoken';
import { signup, startTestApp, uniqueEmail, TEST_SECRET, type SignedUp, type TestApp } from './helpers/app';
import {
  AUDIENCE,
  base64url,
  CLOCK_SKEW_SECONDS,
  decodeClaims,
  membershipRows,
  nowSeconds,
  signLocalToken,
  signToken,
  unsignedToken,
  untilSecond,
  userRow,
} from './helpers/auth-helpers';
import { tableCounts } from './helpers/sql';
import { expectApiError, expectTrpcFailure } from './helpers/errors';

const EXTERNAL_ISSUER = 'https://idp.example.test/';
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }) as string;

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherRsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });

let app: TestApp;
beforeAll(async () => {
  // Configured with an external identity provider; the service's own tokens work beside it.
  app = await startTestApp({ JWT_PUBLIC_KEY: pem(rsa.publicKey), JWT_EXTERNAL_ISSUER: EXTERNAL_ISSUER, AUTH_RATE_LIMIT_PER_MINUTE: '0' });
});
afterAll(async () => {
  await app?.close();
});

/** GET /auth/me with this Authorization header (none when undefined), over REST and over tRPC. */
async function expectRefused(target: TestApp, authorization: string | undefined) {
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  const res = await target.request('GET', '/api/v1/auth/me', { headers });
  expectApiError(res, 401, 'UNAUTHORIZED');
  expect(Object.keys(res.body).sort()).toEqual(['code', 'message']);

  const call =
    authorization === undefined ? target.trpc().auth.me.query() : target.trpc().auth.me.query(undefined, { context: { headers } });
  const error = await expectTrpcFailure(call, 401, 'UNAUTHORIZED');
  expect(error.message).toBe(res.body.message);
  return res.body as { code: string; message: string };
}

async function expectAccepted(target: TestApp, token: string) {
  const res = await target.request('GET', '/api/v1/auth/me', { token });
  expect(res.status, res.text).toBe(200);
  const viaTrpc = await target.trpc(token).auth.me.query();
  expect(viaTrpc).toEqual(res.body);
  return res.body as { user: { id: string; email: string; name: string }; memberships: Array<{ organization_id: string; role: string }> };
}

describe("the service's own tokens", () => {
  let account: SignedUp;
  beforeAll(async () => {
    account = await signup(app, 'Holder');
  });
  const claims = () => ({ sub: account.user.id, tv: 0 });

  it('accepts a token signed like the ones it issues (the baseline the cases below break)', async () => {
    const me = await expectAccepted(app, signLocalToken(claims()));
    expect(me.user.id).toBe(account.user.id);
    expect(await expectAccepted(app, account.token)).toEqual(me);
  });

  const now = nowSeconds();
  const cases: Array<[string, () => string | undefined]> = [
    ['no Authorization header', () => undefined],
    ['"Bearer" without a token', () => 'Bearer'],
    ['"Bearer" with garbage', () => 'Bearer not-a-token!'],
    ['"Bearer" with three segments that are not a JWT', () => 'Bearer abc.def.ghi'],
    ['the Basic scheme', () => `Basic ${Buffer.from(`${account.user.email}:${account.password}`).toString('base64')}`],
    ['a valid token under another scheme', () => `Token ${account.token}`],
    ['an expired token', () => `Bearer ${signLocalToken({ ...claims(), iat: now - 7200, exp: now - 3600 })}`],
    [
      'a token signed with another secret',
      () => `Bearer ${signLocalToken(claims(), { secret: 'another-secret-that-is-32-bytes-or-more' })}`,
    ],
    [
      'a valid token with a changed payload',
      () => {
        const [header, , signature] = account.token.split('.');
        return `Bearer ${header}.${base64url({ ...decodeClaims(account.token), exp: now + 86_400 })}.${signature}`;
      },
    ],
    ['a token of another issuer', () => `Bearer ${signLocalToken({ ...claims(), iss: 'someone-else' })}`],
    ['a token for another audience', () => `Bearer ${signLocalToken({ ...claims(), aud: 'another-api' })}`],
    [
      'an unsigned token (alg "none")',
      () => `Bearer ${unsignedToken({ ...claims(), iss: 'workspaces-api', aud: AUDIENCE, iat: now, exp: now + 3600 })}`,
    ],
    ['an HS512 token with the right secret', () => `Bearer ${signLocalToken(claims(), { algorithm: 'HS512' })}`],
    ['a token without exp', () => `Bearer ${signLocalToken({ ...claims(), exp: undefined })}`],
    ['a token without iat', () => `Bearer ${signLocalToken({ ...claims(), iat: undefined })}`],
    ['a token without sub', () => `Bearer ${signLocalToken({ ...claims(), sub: undefined })}`],
    ['a token without a token version', () => `Bearer ${signLocalToken({ ...claims(), tv: undefined })}`],
    ['a token of an unknown user', () => `Bearer ${signLocalToken({ ...claims(), sub: randomUUID() })}`],
    ['a token whose subject is not a user id', () => `Bearer ${signLocalToken({ ...claims(), sub: 'not-a-uuid' })}`],
  ];

  it.each(cases)('answers 401 UNAUTHORIZED to %s, on both faces', async (_what, authorization) => {
    const before = await tableCounts(app);
    const row = await userRow(app, account.user.id);
    await expectRefused(app, authorization());
    expect(await tableCounts(app)).toEqual(before);
    expect(await userRow(app, account.user.id)).toEqual(row);
  });

  it('answers 401 to a token of a deleted user', async () => {
    const gone = await signup(app, 'Gone');
    const selfSigned = signLocalToken({ sub: gone.user.id, tv: 0 });
    await expectAccepted(app, selfSigned);
    const res = await app.request('DELETE', '/api/v1/auth/me', { token: gone.token });
    expect(res.status, res.text).toBe(204);
    expect(await userRow(app, gone.user.id)).toBeUndefined();

    await expectRefused(app, `Bearer ${gone.token}`);
    await expectRefused(app, `Bearer ${selfSigned}`);
    expect(await userRow(app, gone.user.id)).toBeUndefined();
  });

  it('answers 401 to a token issued before the last logout, and accepts one of the new version', async () => {
    const account = await signup(app, 'Revoked');
    const res = await app.request('POST', '/api/v1/auth/logout', { token: account.token });
    expect(res.status, res.text).toBe(204);
    expect((await userRow(app, account.user.id))!.token_version).toBe(1);

    await expectRefused(app, `Bearer ${account.token}`);
    await expectRefused(app, `Bearer ${signLocalToken({ sub: account.user.id, tv: 0 })}`);
    await expectRefused(app, `Bearer ${signLocalToken({ sub: account.user.id, tv: 2 })}`);
    const me = await expectAccepted(app, signLocalToken({ sub: account.user.id, tv: 1 }));
    expect(me.user.id).toBe(account.user.id);
  });
});

/** An external identity provider's token: sub, email, name, iat, exp, aud, iss; `undefined` drops a claim. */
function externalToken(
  claims: Record<string, unknown>,
  { key = rsa.privateKey, algorithm = 'RS256' }: { key?: jwt.Secret; algorithm?: jwt.Algorithm } = {},
): string {
  const now = nowSeconds();
  return signToken({ iss: EXTERNAL_ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, ...claims }, key, algorithm);
}

const externalUsers = (target: TestApp, subject: string) =>
  target.query<{ id: string; email: string; name: string; password_hash: string | null; external_issuer: string }>(
    'select id, email, name, password_hash, external_issuer from users where external_subject = $1',
    [subject],
  );

/** On first sight: the user, an organization it owns and that organization's default workspace; then the same user. */
async function expectFirstSightThenReuse(target: TestApp, sign: (claims: Record<string, unknown>) => string) {
  const subject = `idp|${randomUUID()}`;
  const email = uniqueEmail('external');
  const before = await tableCounts(target);

  const first = await expectAccepted(target, sign({ sub: subject, email, name: 'Ext Ernal' }));
  expect(first.user).toMatchObject({ email, name: 'Ext Ernal' });
  const stored = await externalUsers(target, subject);
  expect(stored).toEqual([{ id: first.user.id, email, name: 'Ext Ernal', password_hash: null, external_issuer: EXTERNAL_ISSUER }]);
  expect(await tableCounts(target)).toEqual({
    users: before.users + 1,
    organizations: before.organizations + 1,
    memberships: before.memberships + 1,
    workspaces: before.workspaces + 1,
    idempotency_keys: before.idempotency_keys,
  });
  expect(first.memberships).toEqual([{ organization_id: expect.any(String), role: 'owner' }]);
  const organizationId = first.memberships[0]!.organization_id;
  expect(await membershipRows(target, first.user.id)).toEqual([{ organization_id: organizationId, role: 'owner' }]);
  expect(await target.query('select name from organizations where id = $1', [organizationId])).toEqual([
    { name: "Ext Ernal's organization" },
  ]);
  expect(await target.query('select name, slug, is_default from workspaces where organization_id = $1', [organizationId])).toEqual([
    { name: 'Default', slug: 'default', is_default: true },
  ]);

  // Seen again (another token, other claims): the same user, nothing new.
  const again = await expectAccepted(target, sign({ sub: subject, email, name: 'Renamed Later', iat: nowSeconds() - 5 }));
  expect(again.user.id).toBe(first.user.id);
  expect(again.memberships).toEqual(first.memberships);
  expect(await externalUsers(target, subject)).toHaveLength(1);
  expect(await tableCounts(target)).toEqual({
    users: before.users + 1,
    organizations: before.organizations + 1,
    memberships: before.memberships + 1,
    workspaces: before.workspaces + 1,
    idempotency_keys: before.idempotency_keys,
  });
  return { subject, email, user: first.user };
}

describe('tokens of an external identity provider (RS256)', () => {
  it('creates the user, an organization it owns and its default workspace on first sight, and reuses them after', async () => {
    await expectFirstSightThenReuse(app, (claims) => externalToken(claims));
  });

  it('creates one user when first requests arrive together', async () => {
    const subject = `idp|${randomUUID()}`;
    const token = externalToken({ sub: subject, email: uniqueEmail('together'), name: 'Together' });
    const before = await tableCounts(app);

    const responses = await Promise.all(Array.from({ length: 4 }, () => app.request('GET', '/api/v1/auth/me', { token })));
    for (const res of responses) expect(res.status, res.text).toBe(200);
    const ids = new Set(responses.map((r) => r.body.user.id));
    expect(ids.size).toBe(1);
    expect((await externalUsers(app, subject)).map((u) => u.id)).toEqual([...ids]);
    expect(await tableCounts(app)).toEqual({
      users: before.users + 1,
      organizations: before.organizations + 1,
      memberships: before.memberships + 1,
      workspaces: before.workspaces + 1,
      idempotency_keys: before.idempotency_keys,
    });
  });

  it('refuses a token whose email belongs to another account, creating nothing', async () => {
    const local = await signup(app, 'LocalOwner');
    const localRow = await userRow(app, local.user.id);
    const before = await tableCounts(app);

    for (const email of [local.user.email, local.user.email.toUpperCase()]) {
      const subject = `idp|${randomUUID()}`;
      const body = await expectRefused(app, `Bearer ${externalToken({ sub: subject, email, name: 'Impostor' })}`);
      expect(body.message).toMatch(/belongs to another account/i);
      expect(await externalUsers(app, subject)).toEqual([]);
    }
    expect(await tableCounts(app)).toEqual(before);
    expect(await userRow(app, local.user.id)).toEqual(localRow);
  });

  const refused: Array<[string, (claims: Record<string, unknown>) => string]> = [
    ['signed by another RSA key', (claims) => externalToken(claims, { key: otherRsa.privateKey })],
    ['signed by an EC key', (claims) => externalToken(claims, { key: ec.privateKey, algorithm: 'ES256' })],
    ['signed HS256 with the service secret', (claims) => externalToken(claims, { key: TEST_SECRET, algorithm: 'HS256' })],
    [
      'signed HS256 with the public key as the secret',
      (claims) => {
        const header = base64url({ alg: 'HS256', typ: 'JWT' });
        const now = nowSeconds();
        const payload = base64url({ iss: EXTERNAL_ISSUER, aud: AUDIENCE, iat: now, exp: now + 600, ...claims });
        const signature = createHmac('sha256', pem(rsa.publicKey)).update(`${header}.${payload}`).digest('base64url');
        return `${header}.${payload}.${signature}`;
      },
    ],
    [
      'unsigned (alg "none")',
      (claims) => unsignedToken({ iss: EXTERNAL_ISSUER, aud: AUDIENCE, iat: nowSeconds(), exp: nowSeconds() + 600, ...claims }),
    ],
    ['for another audience', (claims) => externalToken({ ...claims, aud: 'another-api' })],
    ['expired', (claims) => externalToken({ ...claims, iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 })],
    ['without exp', (claims) => externalToken({ ...claims, exp: undefined })],
    ['without a valid email', (claims) => externalToken({ ...claims, email: 'not an email' })],
    ['without an email', (claims) => externalToken({ ...claims, email: undefined })],
    ['whose email holds a NUL character', (claims) => externalToken({ ...claims, email: `nul\u0000${uniqueEmail('x')}` })],
    ['whose email holds a lone surrogate', (claims) => externalToken({ ...claims, email: `lone\ud800${uniqueEmail('x')}` })],
  ];

  it.each(refused)('answers 401 to an external token %s, creating nothing', async (_what, sign) => {
    const subject = `idp|${randomUUID()}`;
    const before = await tableCounts(app);
    await expectRefused(app, `Bearer ${sign({ sub: subject, email: uniqueEmail('refused'), name: 'Refused' })}`);
    expect(await externalUsers(app, subject)).toEqual([]);
    expect(await tableCounts(app)).toEqual(before);
  });

  it.each<[string, unknown]>([
    ['a NUL character', 'Nul\u0000Name'],
    ['a lone surrogate', 'Lone \ud800 Name'],
    ['a number', 42],
    ['only spaces', '   '],
  ])('names the user after its email when the name claim holds %s', async (_what, name) => {
    const subject = `idp|${randomUUID()}`;
    const email = uniqueEmail('oddname');
    const me = await expectAccepted(app, externalToken({ sub: subject, email, name }));
    expect(me.user).toMatchObject({ email, name: email });
    expect(await externalUsers(app, subject)).toEqual([
      { id: me.user.id, email, name: email, password_hash: null, external_issuer: EXTERNAL_ISSUER },
    ]);
  });

  it('keeps a long name claim whole characters when it shortens it to 100', async () => {
    const subject = `idp|${randomUUID()}`;
    const email = uniqueEmail('longname');
    // 99 ASCII characters, then emoji: the 100th code unit is the first half of a pair.
    const me = await expectAccepted(app, externalToken({ sub: subject, email, name: `${'n'.repeat(99)}${'\u{1F600}'.repeat(5)}` }));
    expect(me.user.name).toBe('n'.repeat(99));
    expect((await externalUsers(app, subject))[0]!.name).toBe('n'.repeat(99));
  });

  it('refuses a password login to an external account with the usual message', async () => {
    const subject = `idp|${randomUUID()}`;
    const email = uniqueEmail('nopassword');
    await expectAccepted(app, externalToken({ sub: subject, email, name: 'No Password' }));

    const external = await app.request('POST', '/api/v1/auth/login', { body: { email, password: 'any password at all' } });
    const unknown = await app.request('POST', '/api/v1/auth/login', {
      body: { email: uniqueEmail('unknown'), password: 'any password at all' },
    });
    expectApiError(external, 401, 'UNAUTHORIZED');
    expect(external.body).toEqual(unknown.body);
    expect((await externalUsers(app, subject))[0]!.password_hash).toBeNull();
  });

  /**
   * An identity provider's tokens carry no token version: revocation refuses those issued up to
   * the logout or deletion plus the 60 s an `iat` may be ahead of this clock, since a token
   * issued before it by a provider whose clock runs ahead carries an `iat` up to 60 s later.
   */
  it('stops accepting the external tokens issued before a logout, those with an iat ahead within the skew included', async () => {
    const subject = `idp|${randomUUID()}`;
    const claims = { sub: subject, email: uniqueEmail('extlogout'), name: 'Ext Logout' };
    // Both issued before the logout: by a provider whose clock is behind, and by one 59 s ahead.
    const behind = externalToken({ ...claims, iat: nowSeconds() - 10 });
    const ahead = externalToken({ ...claims, iat: nowSeconds() + CLOCK_SKEW_SECONDS - 1 });
    const { user } = await expectAccepted(app, behind);
    expect((await expectAccepted(app, ahead)).user.id).toBe(user.id);

    const res = await app.request('POST', '/api/v1/auth/logout', { token: behind });
    expect(res.status, res.text).toBe(204);
    const loggedOutAt = (await userRow(app, user.id))!.logged_out_at!;
    expect(loggedOutAt).toBeInstanceOf(Date);
    const second = Math.floor(loggedOutAt.getTime() / 1000);

    await expectRefused(app, `Bearer ${behind}`);
    await expectRefused(app, `Bearer ${ahead}`);
    // Issued within the skew after the logout: refused too (README: sign in again after it).
    await expectRefused(app, `Bearer ${externalToken({ ...claims, iat: second + CLOCK_SKEW_SECONDS })}`);
    expect(await externalUsers(app, subject)).toHaveLength(1);

    // Past it, the same account again, its logout kept.
    await untilSecond(second + 1);
    const fresh = externalToken({ ...claims, iat: second + CLOCK_SKEW_SECONDS + 1 });
    expect((await expectAccepted(app, fresh)).user.id).toBe(user.id);
    expect(await externalUsers(app, subject)).toHaveLength(1);
    expect((await userRow(app, user.id))!.logged_out_at).toEqual(loggedOutAt);
    await expectRefused(app, `Bearer ${ahead}`);
  });

  it('keeps a deleted identity deleted for the tokens issued before, those with an iat ahead within the skew included', async () => {
    const subject = `idp|${randomUUID()}`;
    const claims = { sub: subject, email: uniqueEmail('extdeleted'), name: 'Ext Deleted' };
    const behind = externalToken({ ...claims, iat: nowSeconds() - 10 });
    const ahead = externalToken({ ...claims, iat: nowSeconds() + CLOCK_SKEW_SECONDS - 1 });
    const { user } = await expectAccepted(app, behind);

    const res = await app.request('DELETE', '/api/v1/auth/me', { token: behind });
    expect(res.status, res.text).toBe(204);
    const [revoked] = await app.query<{ revoked_ms: number }>(
      `select (extract(epoch from revoked_at) * 1000)::float8 as revoked_ms
         from revoked_external_identities where issuer = $1 and subject = $2`,
      [EXTERNAL_ISSUER, subject],
    );
    const second = Math.floor(revoked!.revoked_ms / 1000);
    const before = await tableCounts(app);

    // None of them brings the account back: no user, organization or workspace is created.
    await expectRefused(app, `Bearer ${ahead}`);
    await expectRefused(app, `Bearer ${behind}`);
    await expectRefused(app, `Bearer ${externalToken({ ...claims, iat: second + CLOCK_SKEW_SECONDS })}`);
    expect(await externalUsers(app, subject)).toEqual([]);
    expect(await tableCounts(app)).toEqual(before);

    // Past the skew, a first sight again: a new, empty account, which the earlier tokens cannot reach either.
    await untilSecond(second + 1);
    const again = await expectAccepted(app, externalToken({ ...claims, iat: second + CLOCK_SKEW_SECONDS + 1 }));
    expect(again.user.id).not.toBe(user.id);
    expect((await externalUsers(app, subject)).map((u) => u.id)).toEqual([again.user.id]);
    await expectRefused(app, `Bearer ${ahead}`);
    await expectRefused(app, `Bearer ${behind}`);
    expect((await externalUsers(app, subject)).map((u) => u.id)).toEqual([again.user.id]);
  });
});

describe('tokens of an external identity provider (ES256)', () => {
  let ecApp: TestApp;
  beforeAll(async () => {
    ecApp = await startTestApp({ JWT_PUBLIC_KEY: pem(ec.publicKey), JWT_EXTERNAL_ISSUER: EXTERNAL_ISSUER });
  });
  afterAll(async () => {
    await ecApp?.close();
  });

  it('creates the user, an organization it owns and its default workspace on first sight, and reuses them after', async () => {
    await expectFirstSightThenReuse(ecApp, (claims) => externalToken(claims, { key: ec.privateKey, algorithm: 'ES256' }));
  });

  it.each<[string, jwt.Secret, jwt.Algorithm]>([
    ['an RS256 token', rsa.privateKey, 'RS256'],
    ['an ES256 token signed by another EC key', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'ES256'],
  ])('answers 401 to %s, creating nothing', async (_what, key, algorithm) => {
    const subject = `idp|${randomUUID()}`;
    const before = await tableCounts(ecApp);
    await expectRefused(ecApp, `Bearer ${externalToken({ sub: subject, email: uniqueEmail('ec'), name: 'Ec' }, { key, algorithm })}`);
    expect(await externalUsers(ecApp, subject)).toEqual([]);
    expect(await tableCounts(ecApp)).toEqual(before);
  });
});
