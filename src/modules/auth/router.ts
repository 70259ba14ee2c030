import { z } from 'zod';
import { addressLimitedProcedure, authedProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import { inTransaction } from '../../trpc/transaction';
import { hashPassword } from '../../auth/passwords';
import { loginInput, loginOutput, meOutput, signupInput, signupOutput } from './schemas';
import { deleteAccount, login, logout, me, signup } from './service';

export const authRouter = router({
  signup: addressLimitedProcedure
    .meta(
      rest('POST', '/auth/signup', 'signup', {
        tag: 'auth',
        summary: "Create an account, its first organization and that organization's default workspace",
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
      return inTransaction(ctx, (tx) => signup(tx, ctx.deps.tokens, { ...account, passwordHash }));
    }),

  login: addressLimitedProcedure
    .meta(
      rest('POST', '/auth/login', 'login', {
        tag: 'auth',
        summary: 'Exchange email and password for an access token',
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
        successStatus: 204,
        errors: [],
      }),
    )
    .input(z.void())
    .output(z.void())
    .mutation(({ ctx }) => inTransaction(ctx, (tx) => logout(tx, ctx.actor.id))),

  me: authedProcedure
    .meta(rest('GET', '/auth/me', 'getMe', { tag: 'auth', summary: 'The caller and its memberships', errors: [] }))
    .input(z.void())
    .output(meOutput)
    .query(({ ctx }) => me(ctx.db, ctx.actor.id)),

  deleteMe: authedProcedure
    .meta(
      rest('DELETE', '/auth/me', 'deleteMe', {
        tag: 'auth',
        summary: "Delete the caller's account (and the organizations where it is the only member)",
        successStatus: 204,
        errors: [409],
      }),
    )
    .input(z.void())
    .output(z.void())
    .mutation(({ ctx }) => inTransaction(ctx, (tx) => deleteAccount(tx, ctx.actor.id))),
});
