import { z } from 'zod';
import { addressLimitedProcedure, authedProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import { inTransaction } from '../../trpc/transaction';
import { authorOf, requestIdsOf } from '../../trpc/context';
import { hashPassword } from '../../auth/passwords';
import { loginInput, loginOutput, meOutput, signupInput, signupOutput } from './schemas';
import { deleteAccount, login, logout, me, signup } from './service';

/** Signup's example, and login's (the same account). */
const SIGNUP_EXAMPLE = { email: 'ada@example.com', password: 'correct horse battery staple', name: 'Ada Lovelace' };

export const authRouter = router({
  signup: addressLimitedProcedure
    .meta(
      rest('POST', '/auth/signup', 'signup', {
        tag: 'auth',
        summary: "Create an account, its first organization and that organization's default workspace",
        description:
          'Public. In one transaction: the user, an organization it owns (named "<name>\'s organization") and that organization\'s default workspace (`default`). Answers 201 with an access token and the three resources, without a Location (it makes several). The email is unique, case-insensitively (409).',
        requestExample: SIGNUP_EXAMPLE,
        successStatus: 201,
        protect: false,
        withoutLocation: true,
        errors: [409],
      }),
    )
    .input(signupInput)
    .output(signupOutput)
    .mutation(async ({ ctx, input: { password, ...account } }) => {
      const passwordHash = await hashPassword(password);
      return inTransaction(ctx, (tx) => signup(tx, ctx.deps.tokens, { ...account, passwordHash }, requestIdsOf(ctx)));
    }),

  login: addressLimitedProcedure
    .meta(
      rest('POST', '/auth/login', 'login', {
        tag: 'auth',
        summary: 'Exchange email and password for an access token',
        description:
          'Public. A wrong email and a wrong password get the same 401 with the same message (and the same work: a hash is computed for unknown emails too).',
        requestExample: { email: SIGNUP_EXAMPLE.email, password: SIGNUP_EXAMPLE.password },
        protect: false,
        errors: [401],
      }),
    )
    .input(loginInput)
    .output(loginOutput)
    .mutation(({ ctx, input }) => login(ctx.db, ctx.deps.tokens, input)),

  logout: authedProcedure
    .meta(
      rest('POST', '/auth/logout', 'logout', {
        tag: 'auth',
        summary: 'Revoke every token issued to the caller so far',
        description:
          "Every access token issued to the caller before now stops working (401), on every server process; an identity provider's tokens with an `iat` up to 60 s after now too (their `iat` may be that far ahead of this service's clock). Takes no body.",
        successStatus: 204,
        errors: [],
      }),
    )
    .input(z.void())
    .output(z.void())
    .mutation(({ ctx }) => inTransaction(ctx, (tx) => logout(tx, ctx.actor.id))),

  me: authedProcedure
    .meta(
      rest('GET', '/auth/me', 'getMe', {
        tag: 'auth',
        summary: 'The caller and its memberships',
        description: "The caller's account and, for each organization it belongs to, its role there.",
        errors: [],
      }),
    )
    .input(z.void())
    .output(meOutput)
    .query(({ ctx }) => me(ctx.db, ctx.actor.id)),

  deleteMe: authedProcedure
    .meta(
      rest('DELETE', '/auth/me', 'deleteMe', {
        tag: 'auth',
        summary: "Delete the caller's account (and the organizations where it is the only member)",
        description:
          'Organizations where the caller is the only member are deleted with the account; if it is the last owner of an organization that has other members, 409 (make another owner first). Its tokens stop working.',
        successStatus: 204,
        errors: [409],
      }),
    )
    .input(z.void())
    .output(z.void())
    .mutation(({ ctx }) => inTransaction(ctx, (tx) => deleteAccount(tx, authorOf(ctx)))),
});
