import { router } from './trpc/init';
import { authRouter } from './modules/auth/router';
import { organizationsRouter } from './modules/organizations/router';
import { workspacesRouter } from './modules/workspaces/router';

export const appRouter = router({
  auth: authRouter,
  organizations: organizationsRouter,
  workspaces: workspacesRouter,
});

/** The router's type, for `@trpc/client`. */
export type AppRouter = typeof appRouter;
