import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startTestApp, uniqueEmail, type SignedUp, type TestApp } from './helpers/app';
import { restRequest, trpcOutcome } from './helpers/faces';
import { createTeam } from './helpers/org-helpers';
import { withRawTransaction } from './helpers/sql';
import { createWorkspace, uniqueWorkspaceName } from './helpers/workspace-helpers';

/**
 * Invitations under concurrency (README, Invitations and guests): a token is spent by its first
 * accept (two accepts at once: one 200, one 404 `Invitation not found`); an accept racing a
 * revoke ends with one of them whole (accepted with its membership and the revoke 409, or
 * revoked with no membership and the accept 404); two creates for one email and target leave
 * one pending invitation (the other 409 naming it). Racing requests are fired together and
 * repeated; the deterministic variants hold the invitation's row in a raw transaction so the
 * two requests queue on it in a chosen order.
 *
 * PostgreSQL only: the embedded database runs one transaction at a time, so nothing races there.
 */

const onPostgres = Boolean(process.env.DATABASE_URL);
const ROUNDS = 10;

describe.runIf(onPostgres)('invitations under concurrency (PostgreSQL)', () => {
  let app: TestApp;
  let owner: SignedUp;
  let invitee: SignedUp;

  beforeAll(async () => {
    // Every round makes an organization of its own: more than the default 100 per user.
    app = await startTestApp({ MAX_ORGANIZATIONS_PER_USER: '1000', DATABASE_DEADLINE_MS: '10000' });
    [owner, invitee] = await signupMany(app, ['Owner', 'Invitee']);
  });
  afterAll(async () => {
    await app?.close();
  });

  // -------------------------------------------------------------------------------------------
  // Requests, on either face
  // -------------------------------------------------------------------------------------------

  type Face = 'REST' | 'tRPC';
  interface Answer {
    status: number;
    body: any;
    /** For failure messages. */
    text: string;
  }

  async function rest(method: string, path: string, token: string, body?: unknown): Promise<Answer> {
    const res = await restRequest(app, method, path, { token, body });
    return { status: res.status, body: res.body, text: `${method} ${path}: ${res.status} ${res.text}` };
  }

  async function trpc(ok: number, what: string, call: () => Promise<unknown>): Promise<Answer> {
    const { status, body } = await trpcOutcome(ok, call);
    return { status, body, text: `${what}: ${status} ${JSON.stringify(body)}` };
  }

  const accept = (face: Face, token: string): Promise<Answer> =>
    face === 'REST'
      ? rest('POST', '/invitations/accept', invitee.token, { token })
      : trpc(200, 'tRPC invitations.accept', () => app.trpc(invitee.token).invitations.accept.mutate({ token }));

  const revoke = (face: Face, id: string): Promise<Answer> =>
    face === 'REST'
      ? rest('DELETE', `/invitations/${id}`, owner.token)
      : trpc(204, 'tRPC invitations.revoke', () => app.trpc(owner.token).invitations.revoke.mutate({ invitation_id: id }));

  // -------------------------------------------------------------------------------------------
  // The two targets
  // -------------------------------------------------------------------------------------------

  interface Target {
    org: string;
    /** null for an invitation to the organization. */
    ws: string | null;
  }

  interface Kind {
    name: string;
    /** A fresh target the invitee is not in. */
    target(): Promise<Target>;
    create(face: Face, target: Target, email: string): Promise<Answer>;
    /** The invitee's membership rows the accept makes (0 or 1). */
    memberships(target: Target): Promise<number>;
    /** The membership's event. */
    addedAction: 'member.added' | 'workspace.member_added';
  }

  const KINDS: Kind[] = [
    {
      name: 'an invitation to the organization',
      target: async () => ({ org: await createTeam(app, owner), ws: null }),
      create: (face, { org }, email) =>
        face === 'REST'
          ? rest('POST', `/organizations/${org}/invitations`, owner.token, { email, role: 'member' })
          : trpc(201, 'tRPC organizations.invitations.create', () =>
              app.trpc(owner.token).organizations.invitations.create.mutate({ org_id: org, email, role: 'member' }),
            ),
      memberships: async ({ org }) =>
        count('select count(*)::int as n from memberships where organization_id = $1 and user_id = $2', [org, invitee.user.id]),
      addedAction: 'member.added',
    },
    {
      name: "a guest's invitation to a workspace",
      target: async () => {
        const org = await createTeam(app, owner);
        const ws = await createWorkspace(app, owner.token, org, {
          name: uniqueWorkspaceName('Racing'),
          settings: { permissions: { allow_guests: true } },
        });
        return { org, ws: ws.id };
      },
      create: (face, { ws }, email) =>
        face === 'REST'
          ? rest('POST', `/workspaces/${ws}/invitations`, owner.token, { email, role: 'member' })
          : trpc(201, 'tRPC workspaces.invitations.create', () =>
              app.trpc(owner.token).workspaces.invitations.create.mutate({ workspace_id: ws!, email, role: 'member' }),
            ),
      memberships: async ({ ws }) =>
        count('select count(*)::int as n from workspace_members where workspace_id = $1 and user_id = $2', [ws, invitee.user.id]),
      addedAction: 'workspace.member_added',
    },
  ];

  async function count(sql: string, params: unknown[]): Promise<number> {
    const [row] = await app.query<{ n: number }>(sql, params);
    return row!.n;
  }

  /** A fresh target of `kind` with a pending invitation of the invitee's email; its id and token. */
  async function invited(kind: Kind) {
    const target = await kind.target();
    const created = await kind.create('REST', target, invitee.user.email);
    expect(created.status, created.text).toBe(201);
    return { target, id: created.body.invitation.id as string, token: created.body.token as string };
  }

  async function storedStatus(id: string) {
    const [row] = await app.query<{ status: string; accepted_user_id: string | null }>(
      'select status, accepted_user_id from invitations where id = $1',
      [id],
    );
    return row;
  }

  /** How many events of each action the invitation and the invitee's membership of the target have. */
  async function eventCounts(kind: Kind, target: Target, invitationId: string) {
    const rows = await app.query<{ action: string; n: number }>(
      `select action, count(*)::int as n from audit_events
        where organization_id = $1
          and ((target_type = 'invitation' and target_id = $2) or (action = $3 and target_id = $4))
        group by action`,
      [target.org, invitationId, kind.addedAction, invitee.user.id],
    );
    return Object.fromEntries(rows.map((r) => [r.action, r.n]));
  }

  /** The end of an accept that won: one membership, the invitation accepted once, one event of each. */
  async function expectAcceptedOnce(kind: Kind, target: Target, id: string, why: string) {
    expect(await kind.memberships(target), why).toBe(1);
    expect(await storedStatus(id), why).toEqual({ status: 'accepted', accepted_user_id: invitee.user.id });
    expect(await eventCounts(kind, target, id), why).toEqual({ 'invitation.created': 1, 'invitation.accepted': 1, [kind.addedAction]: 1 });
  }

  /** The end of a revoke that won: no membership, the invitation revoked, no accept's events. */
  async function expectRevoked(kind: Kind, target: Target, id: string, why: string) {
    expect(await kind.memberships(target), why).toBe(0);
    expect(await storedStatus(id), why).toEqual({ status: 'revoked', accepted_user_id: null });
    expect(await eventCounts(kind, target, id), why).toEqual({ 'invitation.created': 1, 'invitation.revoked': 1 });
  }

  const expectNotFound = (answer: Answer) => {
    expect({ status: answer.status, code: answer.body?.code }, answer.text).toEqual({ status: 404, code: 'NOT_FOUND' });
    expect(answer.body.message, answer.text).toBe('Invitation not found');
  };
  const expectConflict = (answer: Answer) =>
    expect({ status: answer.status, code: answer.body?.code }, answer.text).toEqual({ status: 409, code: 'CONFLICT' });

  /** Waits until `n` statements of this file's database wait for a lock (the requests reached the held row). */
  async function untilWaitingForLocks(n: number) {
    for (let i = 0; i < 500; i++) {
      const waiting = await count(
        `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
        [],
      );
      if (waiting >= n) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`fewer than ${n} statements waited for the held lock`);
  }

  /**
   * Holds the invitation's row (FOR UPDATE) in a raw transaction, fires `first` and waits until
   * it waits, then `second` and waits until it waits too, then releases the row: the two run in
   * that order. Answers both.
   */
  async function inOrder(id: string, first: () => Promise<Answer>, second: () => Promise<Answer>): Promise<[Answer, Answer]> {
    let answers: [Answer, Answer] | undefined;
    await withRawTransaction(app, async (tx) => {
      await tx`select id from invitations where id = ${id} for update`;
      const a = first();
      await untilWaitingForLocks(1);
      const b = second();
      await untilWaitingForLocks(2);
      await tx`rollback`;
      answers = await Promise.all([a, b]);
    });
    return answers!;
  }

  // -------------------------------------------------------------------------------------------
  // Two accepts of one token
  // -------------------------------------------------------------------------------------------

  describe.each(KINDS)('two accepts of one token, $name', (kind) => {
    it(`fired together (${ROUNDS} rounds): one 200 and one 404, one membership, accepted once, one event of each`, async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const { target, id, token } = await invited(kind);
        // Both REST on even rounds; REST and the tRPC client on odd ones.
        const answers = await Promise.all([accept('REST', token), accept(round % 2 ? 'tRPC' : 'REST', token)]);
        const why = `round ${round}: ${answers.map((a) => a.text).join(' | ')}`;
        expect(answers.map((a) => a.status).sort(), why).toEqual([200, 404]);
        const winner = answers.find((a) => a.status === 200)!;
        expect(winner.body.membership, why).toEqual({
          organization_id: target.org,
          workspace_id: target.ws,
          user_id: invitee.user.id,
          role: 'member',
          guest: target.ws !== null,
        });
        expect(winner.body.invitation, why).toMatchObject({ id, status: 'accepted', accepted_user_id: invitee.user.id });
        expectNotFound(answers.find((a) => a.status === 404)!);
        await expectAcceptedOnce(kind, target, id, why);
      }
    });

    it('queued on the held invitation row: the first is 200, the second 404', async () => {
      const { target, id, token } = await invited(kind);
      const [first, second] = await inOrder(
        id,
        () => accept('REST', token),
        () => accept('tRPC', token),
      );
      const why = `${first.text} | ${second.text}`;
      expect(first.status, why).toBe(200);
      expectNotFound(second);
      await expectAcceptedOnce(kind, target, id, why);
    });
  });

  // -------------------------------------------------------------------------------------------
  // An accept racing a revoke
  // -------------------------------------------------------------------------------------------

  describe.each(KINDS)('an accept racing a revoke, $name', (kind) => {
    it(`fired together (${ROUNDS} rounds): one of them wins whole, never both or neither`, async () => {
      const winners = { accept: 0, revoke: 0 };
      for (let round = 0; round < ROUNDS; round++) {
        const { target, id, token } = await invited(kind);
        const face: Face = round % 2 ? 'tRPC' : 'REST';
        const [accepted, revoked] = await Promise.all([accept(face, token), revoke(face, id)]);
        const why = `round ${round} (${face}): ${accepted.text} | ${revoked.text}`;
        expect([200, 404], why).toContain(accepted.status);
        if (accepted.status === 200) {
          winners.accept++;
          expectConflict(revoked);
          await expectAcceptedOnce(kind, target, id, why);
        } else {
          winners.revoke++;
          expectNotFound(accepted);
          expect(revoked.status, why).toBe(204);
          await expectRevoked(kind, target, id, why);
        }
      }
      expect(winners.accept + winners.revoke).toBe(ROUNDS);
    });

    it('the accept queued first on the held row: accept 200, revoke 409', async () => {
      const { target, id, token } = await invited(kind);
      const [accepted, revoked] = await inOrder(
        id,
        () => accept('REST', token),
        () => revoke('REST', id),
      );
      const why = `${accepted.text} | ${revoked.text}`;
      expect(accepted.status, why).toBe(200);
      expectConflict(revoked);
      await expectAcceptedOnce(kind, target, id, why);
    });

    it('the revoke queued first on the held row: revoke 204, accept 404, no membership', async () => {
      const { target, id, token } = await invited(kind);
      const [revoked, accepted] = await inOrder(
        id,
        () => revoke('REST', id),
        () => accept('REST', token),
      );
      const why = `${revoked.text} | ${accepted.text}`;
      expect(revoked.status, why).toBe(204);
      expectNotFound(accepted);
      await expectRevoked(kind, target, id, why);
    });
  });

  // -------------------------------------------------------------------------------------------
  // Two creates for one email and target
  // -------------------------------------------------------------------------------------------

  describe.each(KINDS)('two creates for one email, $name', (kind) => {
    it(`fired together (${ROUNDS} rounds): one 201, one 409 naming it; one pending invitation, one event`, async () => {
      const target = await kind.target();
      for (let round = 0; round < ROUNDS; round++) {
        // No account has the email (the answer is the same either way); on odd rounds the second is spelled in upper case.
        const email = uniqueEmail('racing-invitee');
        const other = round % 2 ? email.toUpperCase() : email;
        const answers = await Promise.all([kind.create('REST', target, email), kind.create(round % 2 ? 'tRPC' : 'REST', target, other)]);
        const why = `round ${round}: ${answers.map((a) => a.text).join(' | ')}`;
        expect(answers.map((a) => a.status).sort(), why).toEqual([201, 409]);
        const created = answers.find((a) => a.status === 201)!;
        const refused = answers.find((a) => a.status === 409)!;
        const id = created.body.invitation.id as string;
        expectConflict(refused);
        expect(refused.body.message, why).toBe(`An invitation to this email is already pending (${id})`);
        const rows = await app.query<{ id: string; status: string }>(
          `select id, status from invitations
            where organization_id = $1 and workspace_id is not distinct from $2 and lower(email) = lower($3)`,
          [target.org, target.ws, email],
        );
        expect(rows, why).toEqual([{ id, status: 'pending' }]);
        expect(
          await count(`select count(*)::int as n from audit_events where action = 'invitation.created' and target_id = $1`, [id]),
          why,
        ).toBe(1);
      }
      // Nothing else was created meanwhile: one pending invitation per round.
      expect(
        await count(
          `select count(*)::int as n from invitations where organization_id = $1 and workspace_id is not distinct from $2 and status = 'pending'`,
          [target.org, target.ws],
        ),
      ).toBe(ROUNDS);
    });
  });
});
