import { router } from './trpc/init';
import { auditRouter } from './modules/audit/router';
import { authRouter } from './modules/auth/router';
import { organizationsRouter } from './modules/organizations/router';
import { workspacesRouter } from './modules/workspaces/router';
import { invitationsRouter } from './modules/invitations/router';

export const appRouter = router({
  auth: authRouter,
  organizations: organizationsRouter,
  workspaces: workspacesRouter,
  /** invitations.get, .resend, .revoke, .preview, .accept, .decline (creates and lists hang from their target) */
  invitations: invitationsRouter,
  /** audit.listOrganizationEvents, audit.listWorkspaceEvents */
  audit: auditRouter,
});

/** The router's type, for `@trpc/client`. */
export type AppRouter = typeof appRouter;
