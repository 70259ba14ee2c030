import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { signup, startTestApp, type SignedUp, type TestApp } from './helpers/app';

/**
 * Swagger UI at /docs in a real browser: Debian's Chromium driven by playwright-core.
 * CI installs it (`apt-get install -y chromium`); without it this file is skipped.
 */
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
const BROWSER_TEST_TIMEOUT = 90_000;
const UI_TIMEOUT = 30_000;

if (!hasChromium) {
  console.warn(`docs-browser.test.ts skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`);
}

describe.skipIf(!hasChromium)(`Swagger UI at /docs (Chromium at ${CHROMIUM})`, () => {
  let app: TestApp;
  let account: SignedUp;
  let browser: Browser;
  let page: Page;
  /** Every URL the page asked for, and those that were not the app's. */
  const requested: string[] = [];
  const foreign: string[] = [];
  const pageErrors: string[] = [];

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
    const origin = new URL(app.url).origin;
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
    page.on('pageerror', (error) => pageErrors.push(error.message));
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

      for (const name of ['auth', 'organizations', 'workspaces']) {
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

  it("loads no asset from outside the app's origin and throws no page error", () => {
    expect(requested.length).toBeGreaterThan(3);
    expect(requested.some((url) => /swagger-ui.*\.js$/.test(url))).toBe(true);
    expect(requested.some((url) => /swagger-ui.*\.css$/.test(url))).toBe(true);
    expect(foreign).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
