/**
 * `npm run openapi:check`: the committed openapi.json is the document the service serves
 * (buildOpenApiDocument, which /openapi.json sends), it is a valid OpenAPI document
 * (@apidevtools/swagger-parser), and it lints clean: Redocly's recommended ruleset
 * (redocly.yaml) and Spectral's `spectral:oas` (.spectral.yaml), 0 errors and 0 warnings.
 *
 * `npm run openapi:write` (this script with `--write`) regenerates openapi.json; commit it with
 * the change that moved it, so API changes show up in review.
 *
 * Exit code: 0 when every check passes, 1 otherwise (each failure says what to do).
 * @module
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import SwaggerParser from '@apidevtools/swagger-parser';
import { buildOpenApiDocument } from '../src/openapi';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COMMITTED = join(ROOT, 'openapi.json');
const bin = (name: string) => join(ROOT, 'node_modules', '.bin', name);

/** The committed form: two-space JSON and a final newline (openapi.json is in .prettierignore). */
const serialize = (document: unknown) => `${JSON.stringify(document, null, 2)}\n`;

/** Where two JSON values first differ, as JSON pointers (at most `limit` of them). */
function differences(a: unknown, b: unknown, path = '', out: string[] = [], limit = 10): string[] {
  if (out.length >= limit || isDeepStrictEqual(a, b)) return out;
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  if (!isObject(a) || !isObject(b) || Array.isArray(a) !== Array.isArray(b)) {
    out.push(path || '/');
    return out;
  }
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    differences(a[key], b[key], `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, out, limit);
  }
  return out;
}

function checkCommitted(document: unknown): boolean {
  if (!existsSync(COMMITTED)) {
    console.error('openapi.json is missing: run `npm run openapi:write` and commit it.');
    return false;
  }
  const committed: unknown = JSON.parse(readFileSync(COMMITTED, 'utf8'));
  // Compared as JSON (key order included), so the check is about content, not whitespace.
  const served: unknown = JSON.parse(serialize(document));
  if (serialize(committed) === serialize(served)) {
    console.log('openapi.json: the committed copy is the served document');
    return true;
  }
  console.error(
    [
      "openapi.json differs from the document the service serves (src/openapi.ts and the procedures' meta and schemas).",
      'Run `npm run openapi:write` and commit openapi.json with your change. First differences:',
      ...differences(committed, served).map((pointer) => `  ${pointer}`),
    ].join('\n'),
  );
  return false;
}

async function validate(): Promise<boolean> {
  try {
    await SwaggerParser.validate(COMMITTED);
    console.log('swagger-parser: valid');
    return true;
  } catch (error) {
    console.error(`swagger-parser: ${error instanceof Error ? error.message : String(error)}`);
    return false;
  }
}

/** Runs a linter; true when it exits 0. Its own report goes to the terminal. */
function run(label: string, command: string, args: string[]): string | undefined {
  try {
    return execFileSync(command, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const failed = error as { stdout?: string; status?: number };
    process.stdout.write(failed.stdout ?? '');
    console.error(`${label}: failed (exit ${failed.status ?? '?'})`);
    return undefined;
  }
}

/** Redocly exits 0 on warnings: its JSON totals decide (0 errors, 0 warnings). */
function redocly(): boolean {
  const args = ['lint', 'openapi.json', '--config', 'redocly.yaml', '--format', 'json'];
  const stdout = run('redocly', bin('redocly'), args);
  if (stdout === undefined) {
    run('redocly', bin('redocly'), ['lint', 'openapi.json', '--config', 'redocly.yaml', '--format', 'stylish']);
    return false;
  }
  const report = JSON.parse(stdout.slice(stdout.indexOf('{'))) as { totals: { errors: number; warnings: number } };
  if (report.totals.errors > 0 || report.totals.warnings > 0) {
    run('redocly', bin('redocly'), ['lint', 'openapi.json', '--config', 'redocly.yaml', '--format', 'stylish']);
    console.error(`redocly (recommended): ${report.totals.errors} errors, ${report.totals.warnings} warnings`);
    return false;
  }
  console.log('redocly (recommended): 0 errors, 0 warnings');
  return true;
}

function spectral(): boolean {
  const stdout = run('spectral', bin('spectral'), ['lint', 'openapi.json', '--ruleset', '.spectral.yaml', '--fail-severity=warn']);
  if (stdout === undefined) return false;
  console.log('spectral (spectral:oas): 0 errors, 0 warnings');
  return true;
}

async function main(): Promise<void> {
  const document = buildOpenApiDocument();
  if (process.argv.includes('--write')) {
    writeFileSync(COMMITTED, serialize(document));
    console.log('openapi.json written; commit it with the change that moved it');
    return;
  }
  // Every check runs, so one run reports every problem.
  const committed = checkCommitted(document);
  const results = committed ? [await validate(), redocly(), spectral()] : [false];
  if (!results.every(Boolean)) process.exit(1);
  console.log('OpenAPI document: committed, valid, lint-clean');
}

await main();
