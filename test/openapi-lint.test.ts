import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '../src/openapi';

/**
 * The served document against the OWASP API Security ruleset (@stoplight/spectral-owasp-ruleset,
 * with the rules that contradict the contract turned off in .spectral-owasp.yaml, each with its
 * reason): no errors. Warnings are printed, not failed on.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SPECTRAL_TIMEOUT_MS = 60_000;

interface Result {
  code: string | number;
  message: string;
  path: Array<string | number>;
  severity: number;
}
const SEVERITY = ['error', 'warn', 'info', 'hint'];
const describeResult = (r: Result) => `${SEVERITY[r.severity] ?? r.severity} ${r.code} at ${r.path.join('.')}: ${r.message}`;

let dir: string;
let results: Result[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openapi-lint-'));
  const file = join(dir, 'openapi.json');
  await writeFile(file, JSON.stringify(buildOpenApiDocument()));
  const args = ['spectral', 'lint', file, '--ruleset', '.spectral-owasp.yaml', '--fail-severity', 'error', '-f', 'json', '-q'];
  let stdout: string;
  try {
    ({ stdout } = await promisify(execFile)('npx', args, { cwd: ROOT, timeout: SPECTRAL_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 }));
  } catch (error) {
    // Spectral exits 1 when it finds errors; its JSON report is still on stdout.
    const failed = error as { stdout?: string; stderr?: string };
    if (!failed.stdout?.trim().startsWith('['))
      throw new Error(`spectral did not run: ${failed.stderr ?? String(error)}`, { cause: error });
    stdout = failed.stdout;
  }
  results = stdout.trim() === '' ? [] : (JSON.parse(stdout) as Result[]);
}, SPECTRAL_TIMEOUT_MS + 10_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the OpenAPI document under the OWASP ruleset (.spectral-owasp.yaml)', () => {
  it('has no errors', () => {
    const warnings = results.filter((r) => r.severity > 0);
    if (warnings.length > 0) console.warn(`spectral (OWASP): ${warnings.length} below error\n${warnings.map(describeResult).join('\n')}`);
    const errors = results.filter((r) => r.severity === 0).map(describeResult);
    expect(errors, errors.join('\n')).toEqual([]);
  });
});
