/**
 * The service on its embedded database (PGlite, in-process, no DATABASE_URL): seeded through
 * its own API — one signup, then workspaces by one provisioning call — in a temp DATA_DIR.
 * There is no baseline on this engine; its numbers are reported as such, with the ratio to the
 * PostgreSQL baseline labelled as that.
 * @module
 */
import { send, type Workload } from './measure';
import { getPath } from './scenarios';
import { startService, type Server } from './processes';

export const EMBEDDED_WORKSPACES = 200;

export async function startEmbedded(dataDir: string, jwtSecret: string): Promise<{ server: Server; workload: Workload }> {
  const server = await startService({ name: 'service (embedded PGlite)', jwtSecret, dataDir });
  try {
    const signup = await fetch(`${server.url}/api/v1/auth/signup`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@bench.example', password: 'bench password, not a secret', name: 'Bench User' }),
    });
    const account = (await signup.json()) as { access_token: string; organization: { id: string }; workspace: { id: string } };
    if (signup.status !== 201) throw new Error(`embedded signup answered ${signup.status}: ${JSON.stringify(account)}`);
    const token = account.access_token;
    const provision = await send(
      server,
      'POST',
      '/api/v1/workspaces/provision',
      token,
      JSON.stringify({
        organization_id: account.organization.id,
        workspaces: Array.from({ length: EMBEDDED_WORKSPACES }, (_, i) => ({
          name: `Workspace ${i + 1}`,
          metadata: { cost_center: `cc-${i % 40}` },
          settings: { features: { beta: i % 2 === 0 } },
        })),
      }),
    );
    if (provision.status !== 201) throw new Error(`embedded provisioning answered ${provision.status}: ${provision.text.slice(0, 300)}`);
    const ids = [account.workspace.id, ...(JSON.parse(provision.text) as { created: Array<{ id: string }> }).created.map((w) => w.id)];
    return { server, workload: { method: 'GET', token, expectStatus: 200, paths: ids.map(getPath) } };
  } catch (error) {
    await server.stop();
    throw error;
  }
}
