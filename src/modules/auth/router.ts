import { z } from 'zod';
import { authedProcedure, publicProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import { loginInput, loginOutput, meOutput, signupInput, signupOutput } from './schemas';
import { deleteAccount, login, logout, me, signup } from './service';

export const authRouter = router({
  signup: publicProcedure
    .meta(rest('POST', '/auth/signup', 'signup', {
      tag: 'auth',
      summary: 'Create an account, its first organization and that organization\'s default workspace',
      successStatus: 201,
      protect: false,
      withoutLocation: true,
      errors: [409],
    }))
    .input(signupInput)
    .output(signupOutput)
    .mutation(({ ctx, input }) => signup(ctx.deps.database.db, ctx.deps.tokens, input)),

  login: publicProcedure
    .meta(rest('POST', '/auth/login', 'login', { tag: 'auth', summary: 'Exchange email and password for an access token', protect: false, errors: [401] }))
    .input(loginInput)
    .output(loginOutput)
    .mutation(({ ctx, input }) => login(ctx.deps.database.db, ctx.deps.tokens, input)),

  logout: authedProcedure
    .meta(rest('POST', '/auth/logout', 'logout', { tag: 'auth', summary: 'Revoke every token issued to the caller so far', successStatus: 204, errors: [] }))
    .input(z.void())
    .output(z.void())
    .mutation(({ ctx }) => logout(ctx.deps.database.db, ctx.actor.id)),

  me: authedProcedure
    .meta(rest('GET', '/auth/me', 'getMe', { tag: 'auth', summary: 'The caller and its memberships', errors: [] }))
    .input(z.void())
    .output(meOutput)
    .query(({ ctx }) => me(ctx.deps.database.db, ctx.actor.id)),

  deleteMe: authedProcedure
    .meta(rest('DELETE', '/auth/me', 'deleteMe', {
      tag: 'auth',
      summary: 'Delete the caller\'s account (and the organizations where it is the only member)',
      successStatus: 204,
      errors: [409],
    }))
    .input(z.void())
    .output(z.void())
    .mutation(({ ctx }) => deleteAccount(ctx.deps.database.db, ctx.actor.id)),
});
