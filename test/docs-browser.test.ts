import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { signup, startTestApp, type SignedUp, type TestApp } from './helpers/app';

/**
 * Swagger UI at /docs in a real browser: Debian's Chromium driven by playwright-core.
 * CI installs it (`apt-get install -y chromium`); without it this file is skipped.
 */
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const BROWSER_TEST_TIMEOUT = 90_000;
const UI_TIMEOUT = 30_000;
/** The page as the last test left it, to look at after a run (git-ignored). */
const RESULTS_DIR = fileURLToPath(new URL('../test-results/', import.meta.url));
const SCREENSHOT = `${RESULTS_DIR}docs-page.png`;
/** The setting the governance steps lock for every workspace of the organization. */
const LOCKED_PATH = 'permissions.allow_guests';

/** Opens an operation's block unless it is open already (a second click on the summary would close it). */
async function expandOperation(block: Locator): Promise<void> {
  await block.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  if (!(await block.getAttribute('class'))?.split(/\s+/).includes('is-open')) await block.locator('.opblock-summary').first().click();
  await expect.poll(async () => (await block.getAttribute('class'))?.split(/\s+/), { timeout: UI_TIMEOUT }).toContain('is-open');
  // tryItOutEnabled starts every operation in edit mode; without it the button is there to press.
  const tryItOut = block.locator('button.try-out__btn', { hasText: 'Try it out' });
  if (await tryItOut.count()) await tryItOut.click();
  await block.locator('button.execute').waitFor({ state: 'visible', timeout: UI_TIMEOUT });
}

/** The live response Swagger UI shows under an operation after Execute: its status cell and its body. */
async function liveResponse(block: Locator): Promise<{ status: string; body: string }> {
  const row = block.locator('.live-responses-table tbody tr.response').first();
  const status = row.locator('.response-col_status');
  await status.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  const body = row.locator('.response-col_description pre').first();
  await body.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  return { status: (await status.innerText()).trim(), body: await body.innerText() };
}

/** Types a path parameter of an open operation. */
async function fillPathParameter(block: Locator, name: string, value: string): Promise<void> {
  const input = block.locator(`tr[data-param-name="${name}"][data-param-in="path"] input`);
  await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await input.fill(value);
}

if (!hasChromium) {
  console.warn(`docs-browser.test.ts skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`);
}

describe.skipIf(!hasChromium)(`Swagger UI at /docs (Chromium at ${CHROMIUM})`, () => {
  let app: TestApp;
  let account: SignedUp;
  let browser: Browser;
  let page: Page;
  let origin: string;
  /** Every URL the page asked for, and those that were not the app's. */
  const requested: string[] = [];
  const foreign: string[] = [];
  /** Every request the browser context saw, routed or not (data: URLs, workers, sockets included). */
  const observed: string[] = [];
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  /** What the create operation made through the page, for the settings step. */
  let created: { id: string; name: string } | undefined;
  /** The API paths the governance steps executed through the page. */
  const executedPaths: string[] = [];

  /** Opens a workspace operation, fills workspace_id, keeps the pre-filled body and executes it: the live response. */
  async function executeOnWorkspace(block: Locator, path: string, workspaceId: string): Promise<{ status: string; body: string }> {
    await expandOperation(block);
    await fillPathParameter(block, 'workspace_id', workspaceId);
    const editor = block.locator('textarea.body-param__text');
    await editor.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    const prefilled = JSON.parse(await editor.inputValue());
    const sent = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === path, { timeout: UI_TIMEOUT });
    await block.locator('button.execute').click();
    const request = await sent;
    expect(request.headers().authorization).toBe(`Bearer ${account.token}`);
    expect(request.postDataJSON()).toEqual(prefilled);
    executedPaths.push(path);
    return liveResponse(block);
  }

  beforeAll(async () => {
    app = await startTestApp();
    account = await signup(app, 'Docs');
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext();
    page = await context.newPage();
    origin = new URL(app.url).origin;
    // Nothing leaves the machine: anything not from the app is recorded and refused.
    await context.route('**/*', async (route) => {
      const url = route.request().url();
      requested.push(url);
      if (url.startsWith('data:') || url.startsWith('blob:') || new URL(url).origin === origin) await route.continue();
      else {
        foreign.push(url);
        await route.abort();
      }
    });
    context.on('request', (request) => observed.push(request.url()));
    page.on('websocket', (socket) => observed.push(socket.url()));
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(`${message.text()} (${message.location().url})`);
    });
  }, BROWSER_TEST_TIMEOUT);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it(
    "renders the document's operations, opened at the organizations tag",
    async () => {
      const response = await page.goto(`${app.url}/docs#/organizations`, { waitUntil: 'load' });
      expect(response?.status()).toBe(200);
      expect(await page.title()).toBe('Workspaces API');

      const tag = page.locator('#operations-tag-organizations');
      await tag.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      await expect.poll(() => tag.getAttribute('data-is-open'), { timeout: UI_TIMEOUT }).toBe('true');

      const listOrganizations = page.locator('#operations-organizations-listOrganizations');
      await listOrganizations.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      expect(await listOrganizations.locator('.opblock-summary-method').innerText()).toBe('GET');
      expect(await listOrganizations.locator('.opblock-summary-path').getAttribute('data-path')).toBe('/organizations');

      for (const name of ['auth', 'organizations', 'workspaces', 'invitations', 'audit']) {
        expect(await page.locator(`#operations-tag-${name}`).count(), `tag ${name}`).toBe(1);
      }
      expect(await page.locator('#operations-auth-signup').count()).toBe(1);
      expect(requested.some((url) => url.endsWith('/openapi.json'))).toBe(true);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'takes a bearer token through Authorize and sends it with Try it out / Execute on GET /auth/me',
    async () => {
      await page.locator('#operations-tag-auth').waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      const authorize = page.locator('.auth-wrapper button.authorize');
      await authorize.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      await authorize.click();

      const dialog = page.locator('.modal-ux');
      await dialog.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      expect(await dialog.innerText()).toMatch(/bearer/i);
      await dialog.locator('input').first().fill(account.token);
      await dialog.locator('button.authorize').click();
      await dialog.locator('button.btn-done').click();
      await dialog.waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
      // The lock icon on the Authorize button now shows "locked".
      await expect.poll(() => authorize.getAttribute('class'), { timeout: UI_TIMEOUT }).toContain('locked');

      const me = page.locator('#operations-auth-getMe');
      await me.locator('.opblock-summary').first().click();
      const tryItOut = me.locator('button.try-out__btn', { hasText: 'Try it out' });
      if (await tryItOut.count()) await tryItOut.click();
      const execute = me.locator('button.execute');
      await execute.waitFor({ state: 'visible', timeout: UI_TIMEOUT });

      const sent = page.waitForRequest((r) => r.url() === `${app.url}/api/v1/auth/me`, { timeout: UI_TIMEOUT });
      await execute.click();
      expect((await sent).headers().authorization).toBe(`Bearer ${account.token}`);

      const status = me.locator('.live-responses-table tbody tr.response .response-col_status').first();
      await status.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      expect((await status.innerText()).trim()).toBe('200');
      const body = me.locator('.live-responses-table tbody tr.response .response-col_description pre').first();
      await expect.poll(() => body.innerText(), { timeout: UI_TIMEOUT }).toContain(account.user.email);

      // The same token, checked by the API itself.
      const direct = await app.request('GET', '/api/v1/auth/me', { token: account.token });
      expect(direct.body.user.id).toBe(account.user.id);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'opens /docs#/workspaces at the Workspaces tag with all nine workspace operations',
    async () => {
      await page.goto(`${app.url}/docs#/workspaces`, { waitUntil: 'load' });
      const tag = page.locator('#operations-tag-workspaces');
      await tag.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      await expect.poll(() => tag.getAttribute('data-is-open'), { timeout: UI_TIMEOUT }).toBe('true');
      const operations = [
        ['createWorkspace', 'POST', '/workspaces'],
        ['listWorkspaces', 'GET', '/workspaces'],
        ['getWorkspace', 'GET', '/workspaces/{workspace_id}'],
        ['updateWorkspace', 'PUT', '/workspaces/{workspace_id}'],
        ['deleteWorkspace', 'DELETE', '/workspaces/{workspace_id}'],
        ['cloneWorkspace', 'POST', '/workspaces/{workspace_id}/clone'],
        ['getWorkspaceSettings', 'GET', '/workspaces/{workspace_id}/settings'],
        ['updateWorkspaceSettings', 'PUT', '/workspaces/{workspace_id}/settings'],
        ['provisionWorkspaces', 'POST', '/workspaces/provision'],
      ];
      for (const [operationId, method, path] of operations) {
        const block = page.locator(`#operations-workspaces-${operationId}`);
        await block.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
        expect(await block.locator('.opblock-summary-method').innerText(), operationId).toBe(method);
        expect(await block.locator('.opblock-summary-path').getAttribute('data-path'), operationId).toBe(path);
      }
      // Opening one shows its request body schema and its documented responses.
      const create = page.locator('#operations-workspaces-createWorkspace');
      await create.locator('.opblock-summary').first().click();
      await create.locator('.responses-table').first().waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      const text = await create.innerText();
      expect(text).toContain('organization_id');
      expect(text).toContain('Idempotency-Key');
      for (const status of ['201', '400', '401', '403', '404', '409', '422']) expect(text).toContain(status);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'lists workspaces through Try it out / Execute on GET /workspaces, with the token from Authorize',
    async () => {
      // persistAuthorization keeps the token of the Authorize dialog across the navigation above.
      const authorize = page.locator('.auth-wrapper button.authorize');
      await expect.poll(() => authorize.getAttribute('class'), { timeout: UI_TIMEOUT }).toContain('locked');

      const list = page.locator('#operations-workspaces-listWorkspaces');
      await expandOperation(list);
      const sent = page.waitForRequest((r) => r.method() === 'GET' && new URL(r.url()).pathname === '/api/v1/workspaces', {
        timeout: UI_TIMEOUT,
      });
      await list.locator('button.execute').click();
      const request = await sent;
      expect(new URL(request.url()).origin).toBe(origin);
      expect(request.headers().authorization).toBe(`Bearer ${account.token}`);

      const { status, body } = await liveResponse(list);
      expect(status).toBe('200');
      const shown = JSON.parse(body);
      expect(shown.next_cursor).toBeNull();
      expect(shown.items).toEqual([
        expect.objectContaining({ id: account.workspace.id, organization_id: account.organization.id, slug: 'default', is_default: true }),
      ]);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'creates a workspace with the pre-filled example of POST /workspaces (organization_id set): 201, and it is there',
    async () => {
      const create = page.locator('#operations-workspaces-createWorkspace');
      await expandOperation(create);
      const editor = create.locator('textarea.body-param__text');
      await editor.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      const prefilled = await editor.inputValue();
      const example = JSON.parse(prefilled);
      expect(Object.keys(example)).toContain('organization_id');
      expect(example.name).toEqual(expect.any(String));
      // What Swagger UI pre-fills is the document's own example for the operation, where it has one.
      const documented = (await app.request('GET', '/openapi.json')).body.paths['/workspaces'].post.requestBody.content['application/json']
        .example;
      if (documented !== undefined) expect(example).toEqual(documented);

      // Only organization_id's value changes; the rest stays as Swagger UI pre-filled it.
      const field = /("organization_id"\s*:\s*)"[^"]*"/g;
      expect(prefilled.match(field)).toHaveLength(1);
      const edited = prefilled.replace(field, `$1"${account.organization.id}"`);
      expect(JSON.parse(edited)).toEqual({ ...example, organization_id: account.organization.id });
      await editor.fill(edited);

      const sent = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === '/api/v1/workspaces', {
        timeout: UI_TIMEOUT,
      });
      await create.locator('button.execute').click();
      const request = await sent;
      expect(request.headers().authorization).toBe(`Bearer ${account.token}`);
      expect(request.postDataJSON()).toEqual(JSON.parse(edited));

      const { status, body } = await liveResponse(create);
      expect(status, body).toBe('201');
      const workspace = JSON.parse(body);
      expect(workspace).toMatchObject({
        organization_id: account.organization.id,
        name: example.name.trim(),
        is_default: false,
        version: 1,
      });
      if (example.slug !== undefined) expect(workspace.slug).toBe(example.slug);
      if (example.description !== undefined) expect(workspace.description).toBe(example.description);
      if (example.metadata !== undefined) expect(workspace.metadata).toEqual(example.metadata);
      created = { id: workspace.id, name: workspace.name };

      // The API and the database agree that it exists.
      const direct = await app.request('GET', `/api/v1/workspaces/${workspace.id}`, { token: account.token });
      expect(direct.status).toBe(200);
      expect(direct.body).toEqual(workspace);
      expect(await app.query('select organization_id, name, is_default, version from workspaces where id = $1', [workspace.id])).toEqual([
        { organization_id: account.organization.id, name: workspace.name, is_default: false, version: 1 },
      ]);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    "reads the new workspace's settings through Try it out / Execute on GET /workspaces/{workspace_id}/settings",
    async () => {
      expect(created, 'the create step made a workspace').toBeDefined();
      const workspaceId = created!.id;
      const settings = page.locator('#operations-workspaces-getWorkspaceSettings');
      await expandOperation(settings);
      const parameter = settings.locator('tr[data-param-name="workspace_id"][data-param-in="path"] input');
      await parameter.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      await parameter.fill(workspaceId);

      const path = `/api/v1/workspaces/${workspaceId}/settings`;
      const sent = page.waitForRequest((r) => r.method() === 'GET' && new URL(r.url()).pathname === path, { timeout: UI_TIMEOUT });
      await settings.locator('button.execute').click();
      expect((await sent).headers().authorization).toBe(`Bearer ${account.token}`);

      const { status, body } = await liveResponse(settings);
      expect(status, body).toBe('200');
      const shown = JSON.parse(body);
      expect(shown).toMatchObject({ workspace_id: workspaceId, version: 1 });
      expect(shown.effective.permissions).toEqual(expect.objectContaining({ default_role: expect.any(String) }));
      // The same document as the API gives.
      const direct = await app.request('GET', path, { token: account.token });
      expect(direct.status).toBe(200);
      expect(direct.body).toEqual(shown);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'renders the audit tag at /docs#/audit, with the events operations, and archive / restore under workspaces',
    async () => {
      await page.goto(`${app.url}/docs#/audit`, { waitUntil: 'load' });
      const tag = page.locator('#operations-tag-audit');
      await tag.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      await expect.poll(() => tag.getAttribute('data-is-open'), { timeout: UI_TIMEOUT }).toBe('true');
      const operations = [
        ['audit', 'listOrganizationEvents', 'GET', '/organizations/{org_id}/events'],
        ['audit', 'listWorkspaceEvents', 'GET', '/workspaces/{workspace_id}/events'],
        ['workspaces', 'archiveWorkspace', 'POST', '/workspaces/{workspace_id}/archive'],
        ['workspaces', 'restoreWorkspace', 'POST', '/workspaces/{workspace_id}/restore'],
        ['organizations', 'updateOrganizationSettings', 'PUT', '/organizations/{org_id}/settings'],
      ];
      for (const [tagName, operationId, method, path] of operations) {
        const block = page.locator(`#operations-${tagName}-${operationId}`);
        await block.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
        expect(await block.locator('.opblock-summary-method').innerText(), operationId).toBe(method);
        expect(await block.locator('.opblock-summary-path').getAttribute('data-path'), operationId).toBe(path);
      }
      // The audit operations sit in the audit section, not elsewhere.
      expect(await page.locator('[id^="operations-"][id$="-listOrganizationEvents"]').count()).toBe(1);
      // persistAuthorization keeps the token across this navigation too.
      const authorize = page.locator('.auth-wrapper button.authorize');
      await expect.poll(() => authorize.getAttribute('class'), { timeout: UI_TIMEOUT }).toContain('locked');
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'locks a setting for every workspace with PUT /organizations/{org_id}/settings: the pre-filled example plus "locks"',
    async () => {
      const orgId = account.organization.id;
      const update = page.locator('#operations-organizations-updateOrganizationSettings');
      await expandOperation(update);
      await fillPathParameter(update, 'org_id', orgId);
      const editor = update.locator('textarea.body-param__text');
      await editor.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      const prefilled = await editor.inputValue();
      const example = JSON.parse(prefilled);
      expect(example.permissions).toEqual(expect.objectContaining({ allow_guests: false }));

      // The example as Swagger UI pre-filled it, with one more top-level member.
      const edited = prefilled.replace(/\}\s*$/, `,\n  "locks": ["${LOCKED_PATH}"]\n}`);
      expect(JSON.parse(edited)).toEqual({ ...example, locks: [LOCKED_PATH] });
      await editor.fill(edited);

      const path = `/api/v1/organizations/${orgId}/settings`;
      const sent = page.waitForRequest((r) => r.method() === 'PUT' && new URL(r.url()).pathname === path, { timeout: UI_TIMEOUT });
      await update.locator('button.execute').click();
      const request = await sent;
      expect(request.headers().authorization).toBe(`Bearer ${account.token}`);
      expect(request.postDataJSON()).toEqual(JSON.parse(edited));
      executedPaths.push(path);

      const { status, body } = await liveResponse(update);
      expect(status, body).toBe('200');
      const shown = JSON.parse(body);
      expect(shown).toMatchObject({ organization_id: orgId, locks: [LOCKED_PATH] });
      expect(shown.effective.permissions.allow_guests).toBe(false);

      expect(await app.query('select settings_locks from organizations where id = $1', [orgId])).toEqual([
        { settings_locks: [LOCKED_PATH] },
      ]);
      // Enforced: a workspace of the organization reports the lock and cannot override it.
      expect(created, 'the create step made a workspace').toBeDefined();
      const settings = await app.request('GET', `/api/v1/workspaces/${created!.id}/settings`, { token: account.token });
      expect(settings.status).toBe(200);
      expect(settings.body.locked).toEqual([LOCKED_PATH]);
      const refused = await app.request('PUT', `/api/v1/workspaces/${created!.id}/settings`, {
        token: account.token,
        body: { permissions: { allow_guests: true } },
      });
      expect(refused.status, refused.text).toBe(409);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'archives the new workspace with POST /workspaces/{workspace_id}/archive: 200, archived_at set',
    async () => {
      expect(created, 'the create step made a workspace').toBeDefined();
      const workspaceId = created!.id;
      const before = await app.query<{ version: number }>('select version from workspaces where id = $1', [workspaceId]);
      const archive = page.locator('#operations-workspaces-archiveWorkspace');
      const { status, body } = await executeOnWorkspace(archive, `/api/v1/workspaces/${workspaceId}/archive`, workspaceId);
      expect(status, body).toBe('200');
      const shown = JSON.parse(body);
      expect(shown).toMatchObject({ id: workspaceId, archived_at: expect.any(String), version: before[0]!.version + 1 });

      const [row] = await app.query<{ archived_at: Date | string | null }>('select archived_at from workspaces where id = $1', [
        workspaceId,
      ]);
      expect(row?.archived_at).not.toBeNull();
      expect(new Date(row!.archived_at!).toISOString()).toBe(new Date(shown.archived_at).toISOString());
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'restores it with POST /workspaces/{workspace_id}/restore: 200, archived_at null again',
    async () => {
      expect(created, 'the create step made a workspace').toBeDefined();
      const workspaceId = created!.id;
      const before = await app.query<{ version: number; archived_at: unknown }>(
        'select version, archived_at from workspaces where id = $1',
        [workspaceId],
      );
      expect(before[0]?.archived_at, 'the archive step archived it').not.toBeNull();
      const restore = page.locator('#operations-workspaces-restoreWorkspace');
      const { status, body } = await executeOnWorkspace(restore, `/api/v1/workspaces/${workspaceId}/restore`, workspaceId);
      expect(status, body).toBe('200');
      expect(JSON.parse(body)).toMatchObject({ id: workspaceId, archived_at: null, version: before[0]!.version + 1 });
      expect(await app.query('select archived_at from workspaces where id = $1', [workspaceId])).toEqual([{ archived_at: null }]);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'shows who changed what with GET /organizations/{org_id}/events: the lock, the archive and the restore, newest first',
    async () => {
      const orgId = account.organization.id;
      const events = page.locator('#operations-audit-listOrganizationEvents');
      await expandOperation(events);
      await fillPathParameter(events, 'org_id', orgId);
      const path = `/api/v1/organizations/${orgId}/events`;
      const sent = page.waitForRequest((r) => r.method() === 'GET' && new URL(r.url()).pathname === path, { timeout: UI_TIMEOUT });
      await events.locator('button.execute').click();
      expect((await sent).headers().authorization).toBe(`Bearer ${account.token}`);
      executedPaths.push(path);

      const { status, body } = await liveResponse(events);
      expect(status, body).toBe('200');
      for (const action of ['workspace.archived', 'workspace.restored', 'organization.settings_updated']) expect(body).toContain(action);
      const shown = JSON.parse(body);
      const actor = { id: account.user.id, email: account.user.email };
      expect(shown.items.slice(0, 3)).toEqual([
        expect.objectContaining({ action: 'workspace.restored', target_id: created?.id, workspace_id: created?.id, actor }),
        expect.objectContaining({ action: 'workspace.archived', target_id: created?.id, workspace_id: created?.id, actor }),
        expect.objectContaining({
          action: 'organization.settings_updated',
          target_type: 'organization',
          target_id: orgId,
          actor,
          changes: expect.objectContaining({ locks: expect.objectContaining({ to: [LOCKED_PATH] }) }),
        }),
      ]);
      // The same page as the API gives.
      const direct = await app.request('GET', path, { token: account.token });
      expect(direct.status).toBe(200);
      expect(direct.body).toEqual(shown);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    'previews an invitation with POST /invitations/preview, no token sent: the pre-filled example with the real token',
    async () => {
      const invited = await app.request('POST', `/api/v1/organizations/${account.organization.id}/invitations`, {
        token: account.token,
        body: { email: 'browser-invitee@example.com', role: 'member' },
      });
      expect(invited.status, invited.text).toBe(201);
      await page.goto(`${app.url}/docs#/invitations`, { waitUntil: 'load' });
      const preview = page.locator('#operations-invitations-previewInvitation');
      await expandOperation(preview);
      const editor = preview.locator('textarea.body-param__text');
      await editor.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      const example = JSON.parse(await editor.inputValue());
      expect(Object.keys(example)).toEqual(['token']);
      await editor.fill(JSON.stringify({ token: invited.body.token }));

      const path = '/api/v1/invitations/preview';
      const sent = page.waitForRequest((r) => r.method() === 'POST' && new URL(r.url()).pathname === path, { timeout: UI_TIMEOUT });
      await preview.locator('button.execute').click();
      const request = await sent;
      // An open operation: Swagger UI sends no Authorization, even with a token in Authorize.
      expect(request.headers().authorization).toBeUndefined();
      executedPaths.push(path);

      const { status, body } = await liveResponse(preview);
      expect(status, body).toBe('200');
      expect(JSON.parse(body)).toEqual({
        organization_name: account.organization.name,
        workspace_name: null,
        role: 'member',
        expires_at: invited.body.invitation.expires_at,
        status: 'pending',
      });
      // Previewing changes nothing.
      expect(await app.query('select status from invitations where id = $1', [invited.body.invitation.id])).toEqual([
        { status: 'pending' },
      ]);
    },
    BROWSER_TEST_TIMEOUT,
  );

  it(
    "sends no request outside the app's origin, logs no console error, throws no page error, and leaves a screenshot",
    async () => {
      mkdirSync(RESULTS_DIR, { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      expect(readFileSync(SCREENSHOT).subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

      // Nothing left the machine: every request went to the app's origin, or was data: / blob:.
      const elsewhere = observed.filter((url) => !url.startsWith('data:') && !url.startsWith('blob:') && new URL(url).origin !== origin);
      expect(elsewhere).toEqual([]);
      expect(foreign).toEqual([]);
      expect(consoleErrors).toEqual([]);
      expect(pageErrors).toEqual([]);

      expect(requested.length).toBeGreaterThan(3);
      expect(requested.some((url) => /swagger-ui.*\.js$/.test(url))).toBe(true);
      expect(requested.some((url) => /swagger-ui.*\.css$/.test(url))).toBe(true);
      const paths = observed.filter((url) => url.startsWith(`${origin}/`)).map((url) => new URL(url).pathname);
      const executed = ['/openapi.json', '/api/v1/auth/me', '/api/v1/workspaces'];
      if (created) executed.push(`/api/v1/workspaces/${created.id}/settings`);
      executed.push(...executedPaths);
      for (const path of executed) expect(paths, path).toContain(path);
    },
    BROWSER_TEST_TIMEOUT,
  );
});
