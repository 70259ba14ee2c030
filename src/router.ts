import { router } from './trpc/init';
import { auditRouter } from './modules/audit/router';
import { authRouter } from './modules/auth/router';
import { organizationsRouter } from './modules/organizations/router';
import { workspacesRouter } from './modules/workspaces/router';

export const appRouter = router({
  auth: authRouter,
  organizations: organizationsRouter,
  workspaces: workspacesRouter,
  /** audit.listOrganizationEvents, audit.listWorkspaceEvents */
  audit: auditRouter,
});

/** The router's type, for `@trpc/client`. */
export type AppRouter = typeof appRouter;
