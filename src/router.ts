import { router } from './trpc/init';
import { authRouter } from './modules/auth/router';
import { organizationsRouter } from './modules/organizations/router';

export const appRouter = router({
  auth: authRouter,
  organizations: organizationsRouter,
});

/** The router's type, for `@trpc/client`. */
export type AppRouter = typeof appRouter;
