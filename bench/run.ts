/**
 * `npm run bench`: the service against a minimal baseline, on one fresh PostgreSQL database.
 *
 * 1. Builds the service (`npm run build`) and bundles the baseline (esbuild, into a temp dir).
 * 2. Creates `ws_bench_<pid>`, applies the service's migrations, seeds it in bulk (seed.ts).
 * 3. Starts the service processes (production start; one each for LOG_LEVEL=warn and
 *    DATABASE_PREPARE=false; counting twins wired through the round-trip proxy) and the baseline.
 * 4. Checks the baseline answers every read exactly as the service does; stops if not.
 * 5. Runs the scenarios: warm-up, then alternating rounds per side; round trips per request
 *    through the proxy; provisioning; then (full runs, or BENCH_PROFILE=1) a `node --cpu-prof`
 *    profile of the service alone under each read scenario with a ratio target (profile.ts);
 *    the embedded database last.
 * 6. Prints the report, writes BENCHMARKS.md (not in smoke mode, not when broken) and the raw
 *    numbers as JSON (BENCH_RESULTS, or a file in the OS temp dir).
 *
 * Exit 1 only when something is broken (an unexpected status, a connection error, the
 * baseline disagreeing with the service, a setup failure); a missed target is only reported.
 * Child processes, the database and the temp dir are removed on every exit, Ctrl-C included.
 *
 * Env: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_SMOKE=1, BENCH_POSTGRES_URL
 * (postgres://postgres@127.0.0.1:5432/postgres), BENCH_RESULTS (path of the JSON), BENCH_PROFILE
 * (1 or 0: profile or not; default on in full runs, off in smoke runs).
 * @module
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { build } from 'esbuild';
import postgres from 'postgres';
import { startEmbedded } from './embedded';
import { alternate, roundTripsPerRequest, send, type LoadSettings, type Workload } from './measure';
import { loadOptions, type BenchOptions } from './options';
import { REPO_ROOT, runToEnd, sampleRss, startBaseline, startService, type Server } from './processes';
import { measureProvisioning } from './provision';
import { summarizeProfile } from './profile';
import { startCountingProxy, type CountingProxy } from './proxy';
import { renderReport, writeBenchmarksFile, type Results, type ScenarioKey, type SideKey, type SideSummary } from './report';
import { baselineChecks, listPath, memberListExpectation, readWorkloads, writeWorkloads, type ListPages } from './scenarios';
import { createDatabase, databaseUrl, dropDatabase, EXPLICIT_MEMBERSHIPS, migrate, seed, type Fixture, type Sql } from './seed';
import { verifyBaseline } from './verify';

const say = (line: string) => process.stderr.write(`bench: ${line}\n`);

/** Undo steps, run last-registered first, once, whichever way the run ends. */
class Cleanup {
  private steps: Array<{ what: string; run: () => Promise<unknown> }> = [];
  private running: Promise<void> | undefined;

  add(what: string, run: () => Promise<unknown>): void {
    this.steps.push({ what, run });
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        await step
          .run()
          .catch((error: unknown) => say(`cleanup: ${step.what} failed: ${error instanceof Error ? error.message : String(error)}`));
      }
    })();
    return this.running;
  }
}

/** A side as run.ts describes it: where the load goes, and the twin whose database connection the proxy counts. */
interface SidePlan {
  key: SideKey;
  label: string;
  server: Server;
  workload: Workload;
  counter?: { server: Server; proxy: CountingProxy };
}

async function bundleBaseline(outfile: string): Promise<void> {
  await build({
    entryPoints: [join(REPO_ROOT, 'bench/baseline.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    // Bundled CommonJS (jsonwebtoken) requires Node's built-ins; an ES module has no `require` of its own.
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
    logLevel: 'error',
  });
}

function machine(postgresVersion: string): Results['machine'] {
  const cpu = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU';
  return {
    cpu,
    cores: availableParallelism(),
    node: process.version,
    postgres: postgresVersion,
    date: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
  };
}

/**
 * One list's pages, found by following next_cursor: the second page of `limit`, and the page of
 * `limit` that starts `offset` rows in (reached 100 rows at a time).
 */
async function listPages(
  service: Server,
  token: string,
  query: { organizationId?: string; limit: number },
  offset: number,
): Promise<{ second: string; deep: string }> {
  const page = async (path: string) => {
    const answer = await send(service, 'GET', path, token);
    if (answer.status !== 200) throw new Error(`GET ${path} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    return JSON.parse(answer.text) as { items: Array<{ id: string }>; next_cursor: string | null };
  };
  const first = await page(listPath(query));
  let cursor: string | undefined;
  for (let seen = 0; seen < offset; seen += 100) {
    cursor = (await page(listPath({ ...query, limit: 100, cursor }))).next_cursor ?? undefined;
    if (!cursor) throw new Error(`the list ${listPath(query)} ended before ${offset} rows (at ${seen + 100})`);
  }
  return { second: listPath({ ...query, cursor: first.next_cursor ?? undefined }), deep: listPath({ ...query, cursor }) };
}

/** The pages the checks and the deep-page scenarios read (scenarios.ts ListPages). */
async function findPages(service: Server, fixture: Fixture, options: BenchOptions): Promise<ListPages> {
  const all = await listPages(service, fixture.bench.token, { limit: 20 }, options.deepOffset);
  const visible = await listPages(
    service,
    fixture.member.token,
    { organizationId: fixture.accessVisible.id, limit: 20 },
    options.memberListDeepOffset,
  );
  const granted = await listPages(service, fixture.member.token, { organizationId: fixture.accessPrivate.id, limit: 7 }, 0);
  return { ...all, memberVisibleSecond: visible.second, memberVisibleDeep: visible.deep, memberPrivateSecond: granted.second };
}

/** Stops the run when the service's answer is not the access the fixture was seeded with (scenarios.ts memberListExpectation). */
async function checkAccessFixture(service: Server, fixture: Fixture): Promise<void> {
  const expected = memberListExpectation(fixture);
  const answer = await send(service, 'GET', expected.path, expected.token);
  const ids = answer.status === 200 ? (JSON.parse(answer.text) as { items: Array<{ id: string }> }).items.map((w) => w.id) : [];
  if ([...ids].sort().join() !== [...expected.ids].sort().join()) {
    throw new Error(
      `${expected.what}: the service answered ${answer.status} with ${ids.length} workspaces, not the ${expected.ids.length} seeded`,
    );
  }
}

async function run(options: BenchOptions, cleanup: Cleanup): Promise<Results> {
  const started = performance.now();
  const tmp = await mkdtemp(join(tmpdir(), 'ws-bench-'));
  cleanup.add('remove the temp dir', () => rm(tmp, { recursive: true, force: true }));

  say('building the service (npm run build) and bundling the baseline (esbuild)');
  await runToEnd('npm', ['run', 'build', '--silent'], process.env);
  const baselineBundle = join(tmp, 'baseline.mjs');
  await bundleBaseline(baselineBundle);

  const dbName = `ws_bench_${process.pid}`;
  await createDatabase(options.adminUrl, dbName);
  cleanup.add(`drop database ${dbName}`, () => dropDatabase(options.adminUrl, dbName));
  const url = databaseUrl(options.adminUrl, dbName);
  say(`database ${dbName}: migrating (the service's migrations), seeding`);
  await migrate(url);
  const sql: Sql = postgres(url, { max: 2, onnotice: () => {} });
  cleanup.add('close the seed connection', () => sql.end({ timeout: 1 }));
  const secret = randomBytes(36).toString('base64url');
  const seedStarted = performance.now();
  const fixture: Fixture = await seed(sql, options, secret);
  const [{ total }] = (await sql`select count(*)::int as total from workspaces`) as unknown as [{ total: number }];
  const [{ server_version: postgresVersion }] = (await sql`show server_version`) as unknown as [{ server_version: string }];
  say(`seeded ${total.toLocaleString('en-US')} workspaces in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);

  // Round trips are counted on twins of the measured processes whose database connection goes
  // through a proxy: the processes under load connect directly.
  const direct = new URL(url);
  const proxy = async (what: string) => {
    const counting = await startCountingProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
    cleanup.add(`close the ${what} proxy`, () => counting.close());
    const proxied = new URL(url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(counting.port);
    return { proxy: counting, url: proxied.toString() };
  };
  const [serviceProxy, noPrepareProxy, baselineProxy] = await Promise.all([proxy('service'), proxy('prepare=false'), proxy('baseline')]);
  const started_ = <T extends Server>(server: Promise<T>) =>
    server.then((s) => {
      cleanup.add(`stop ${s.name}`, () => s.stop());
      return s;
    });
  say('starting the service processes and the baseline');
  const [service, warn, noPrepare, countingService, countingNoPrepare, baseline, countingBaseline] = await Promise.all([
    started_(startService({ name: 'service', jwtSecret: secret, databaseUrl: url })),
    started_(startService({ name: 'service (LOG_LEVEL=warn)', jwtSecret: secret, databaseUrl: url, logLevel: 'warn' })),
    started_(startService({ name: 'service (DATABASE_PREPARE=false)', jwtSecret: secret, databaseUrl: url, prepare: false })),
    started_(startService({ name: 'service (counting)', jwtSecret: secret, databaseUrl: serviceProxy.url })),
    started_(
      startService({ name: 'service (counting, prepare=false)', jwtSecret: secret, databaseUrl: noPrepareProxy.url, prepare: false }),
    ),
    started_(startBaseline('baseline', baselineBundle, url, secret)),
    started_(startBaseline('baseline (counting)', baselineBundle, baselineProxy.url, secret)),
  ]);

  say('checking that the baseline answers every read as the service does');
  await checkAccessFixture(service, fixture);
  const pages = await findPages(service, fixture, options);
  const checks = baselineChecks(fixture, pages);
  await verifyBaseline(service, baseline, checks);
  say(`baseline agrees with the service on ${checks.length} requests`);

  const results: Results = {
    machine: machine(postgresVersion),
    run: {
      smoke: options.smoke,
      rounds: options.rounds,
      seconds: options.seconds,
      connections: options.connections,
      roundTripRequests: options.roundTripRequests,
      provisionCalls: options.provisionCalls,
    },
    seed: {
      organizations: options.organizations,
      workspacesPerOrganization: options.workspacesPerOrganization,
      scaleSmall: options.scaleSmall,
      scaleLarge: options.scaleLarge,
      provisionFull: options.provisionFullSize,
      memberList: options.memberListSize,
      memberListDeepOffset: options.memberListDeepOffset,
      totalWorkspaces: total,
    },
    scenarios: {},
    provision: [],
    rssKb: { service: null, baseline: null },
    profiles: [],
    failures: [],
    elapsedSeconds: 0,
  };
  const load: LoadSettings = {
    rounds: options.rounds,
    seconds: options.seconds,
    warmupSeconds: options.warmupSeconds,
    connections: options.connections,
  };
  // Processes that have served nothing yet: a longer warm-up, or their first round measures the JIT.
  const fresh: LoadSettings = { ...load, warmupSeconds: options.firstWarmupSeconds };
  const counted = { server: countingService, proxy: serviceProxy.proxy };
  const countedBaseline = { server: countingBaseline, proxy: baselineProxy.proxy };

  const scenario = async (key: ScenarioKey, title: string, sides: SidePlan[], settings = load) => {
    say(`${title}: ${sides.map((s) => s.label).join(' · ')}`);
    const measured = await alternate(sides, settings);
    const summaries: Partial<Record<SideKey, SideSummary>> = {};
    for (const [i, plan] of sides.entries()) {
      const roundTrips = plan.counter
        ? await roundTripsPerRequest(plan.counter.server, plan.counter.proxy, plan.workload, options.roundTripRequests)
        : null;
      const summary = { ...measured[i]!, roundTrips };
      summaries[plan.key] = summary;
      if (summary.failures.length > 0) results.failures.push(`${title}, ${plan.label}: ${summary.failures.join('; ')}`);
      say(
        `  ${plan.label}: ${summary.rps.toFixed(0)} req/s, p50 ${summary.p50.toFixed(2)} ms, p99 ${summary.p99.toFixed(2)} ms, ` +
          `${summary.cpuUsPerRequest.toFixed(0)} µs CPU/req, ${roundTrips === null ? '—' : roundTrips.toFixed(1)} round trips/req` +
          `${summary.failures.length ? ` — FAILED: ${summary.failures.join('; ')}` : ''}`,
      );
    }
    results.scenarios[key] = summaries;
  };

  const reads = readWorkloads(fixture, pages);
  const pair = (workload: Workload): SidePlan[] => [
    { key: 'service', label: 'service', server: service, workload, counter: counted },
    { key: 'baseline', label: 'baseline', server: baseline, workload, counter: countedBaseline },
  ];

  const stopRss = sampleRss([service.pid, baseline.pid]);
  await scenario(
    'get',
    'REST get by id',
    [
      ...pair(reads.get),
      // Log level changes no query: its round trips are the service's own (counted there too).
      { key: 'warn', label: 'service, LOG_LEVEL=warn', server: warn, workload: reads.get, counter: counted },
      {
        key: 'noPrepare',
        label: 'service, DATABASE_PREPARE=false',
        server: noPrepare,
        workload: reads.get,
        counter: { server: countingNoPrepare, proxy: noPrepareProxy.proxy },
      },
    ],
    fresh,
  );
  const rss = stopRss();
  results.rssKb = { service: rss.get(service.pid) ?? null, baseline: rss.get(baseline.pid) ?? null };
  await Promise.all([warn.stop(), noPrepare.stop(), countingNoPrepare.stop()]);

  await scenario('trpc', 'tRPC get by id', pair(reads.trpc));
  await scenario('settings', 'settings get', pair(reads.settings));
  await scenario('listOrganization', 'list, first page, one organization', pair(reads.listOrganization));
  await scenario('listAll', 'list, first page, all organizations', pair(reads.listAll));
  await scenario('listDeep', `list, ${options.deepOffset} rows deep`, pair(reads.listDeep));
  const small = `${options.scaleSmall.toLocaleString('en-US')}-workspace organization`;
  const large = `${options.scaleLarge.toLocaleString('en-US')}-workspace organization`;
  await scenario('scaleGet', 'get by id, small vs large organization', [
    { key: 'small', label: small, server: service, workload: reads.scaleGetSmall, counter: counted },
    { key: 'large', label: large, server: service, workload: reads.scaleGetLarge, counter: counted },
  ]);
  await scenario('scaleList', 'list first page, small vs large organization', [
    { key: 'small', label: small, server: service, workload: reads.scaleListSmall, counter: counted },
    { key: 'large', label: large, server: service, workload: reads.scaleListLarge, counter: counted },
  ]);
  const sized = options.memberListSize.toLocaleString('en-US');
  await scenario('memberList', "a plain member's list (limit 20)", [
    { key: 'reference', label: `first page, ${small}`, server: service, workload: reads.memberListReference, counter: counted },
    { key: 'visible', label: `first page, ${sized} visible`, server: service, workload: reads.memberListVisible, counter: counted },
    {
      key: 'visibleDeep',
      label: `${options.memberListDeepOffset.toLocaleString('en-US')} rows deep, ${sized} visible`,
      server: service,
      workload: reads.memberListVisibleDeep,
      counter: counted,
    },
    {
      key: 'private',
      label: `first page, ${sized} private (${EXPLICIT_MEMBERSHIPS} explicit)`,
      server: service,
      workload: reads.memberListPrivate,
      counter: counted,
    },
  ]);

  // Writes last among the PostgreSQL scenarios: they add workspaces to the organizations the reads measured.
  const writes = writeWorkloads(fixture, randomBytes(3).toString('hex'));
  const alone = (workload: Workload): SidePlan[] => [{ key: 'service', label: 'service', server: service, workload, counter: counted }];
  await scenario('settingsPut', 'settings put', alone(writes.settingsPut));
  await scenario('create', 'create', alone(writes.create));
  await scenario('clone', 'clone', alone(writes.clone));

  say(
    `provision 1,000: ${options.provisionCalls} calls each into an empty organization and one of ${options.provisionFullSize.toLocaleString('en-US')}`,
  );
  try {
    results.provision = await measureProvisioning({
      sql,
      server: service,
      counter: counted,
      token: fixture.scale.token,
      templateId: fixture.templateId,
      targets: [
        { label: 'empty organization', organizationId: fixture.provisionEmpty.id },
        { label: `${options.provisionFullSize.toLocaleString('en-US')}-workspace organization`, organizationId: fixture.provisionFull.id },
      ],
      calls: options.provisionCalls,
    });
    for (const p of results.provision) {
      say(
        `  ${p.label}: p50 ${p.p50.toFixed(1)} ms per call, ${p.roundTrips.toFixed(1)} round trips per call (${p.roundTripsSmallBatch.toFixed(1)} for 10 items)`,
      );
    }
  } catch (error) {
    results.failures.push(`provision: ${error instanceof Error ? error.message : String(error)}`);
    say(`  provision FAILED: ${error instanceof Error ? error.message : String(error)}`);
  }

  if (options.profile) {
    const profiled: Array<{ label: string; workload: Workload; prepare?: boolean }> = [
      { label: 'REST get by id', workload: reads.get },
      { label: 'tRPC get by id', workload: reads.trpc },
      { label: 'settings get', workload: reads.settings },
      { label: 'REST get by id, DATABASE_PREPARE=false', workload: reads.get, prepare: false },
    ];
    for (const { label, workload, prepare } of profiled) {
      say(`profile: ${label} (node --cpu-prof)`);
      const dir = await mkdtemp(join(tmp, 'profile-'));
      const server = await startService({
        name: `service (profiled: ${label})`,
        jwtSecret: secret,
        databaseUrl: url,
        prepare,
        cpuProfileDir: dir,
      });
      cleanup.add(`stop ${server.name}`, () => server.stop());
      await alternate([{ label, server, workload }], { ...fresh, rounds: 0 });
      const measuredFrom = performance.now();
      const [measured] = await alternate([{ label, server, workload }], {
        ...load,
        rounds: 1,
        warmupSeconds: 0,
        seconds: options.seconds * 2,
      });
      await server.stop();
      if (measured!.failures.length > 0) results.failures.push(`profile, ${label}: ${measured!.failures.join('; ')}`);
      results.profiles.push(summarizeProfile(label, dir, performance.now() - measuredFrom));
    }
  }

  say('embedded database: starting the service on PGlite in a temp dir, seeding it through its API');
  const embedded = await startEmbedded(join(tmp, 'embedded-data'), secret);
  cleanup.add(`stop ${embedded.server.name}`, () => embedded.server.stop());
  await scenario(
    'embedded',
    'REST get by id, embedded PGlite',
    [{ key: 'service', label: 'service, embedded PGlite', server: embedded.server, workload: embedded.workload }],
    fresh,
  );
  await embedded.server.stop();

  results.elapsedSeconds = (performance.now() - started) / 1000;
  return results;
}

async function main(): Promise<number> {
  const options = loadOptions();
  const cleanup = new Cleanup();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // npm and tsx pass the terminal's signal on too: the first one is acted on.
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping; removing the database, processes and temp dir`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  say(
    `${options.smoke ? 'SMOKE run' : 'full run'}: ${options.rounds} round(s) of ${options.seconds} s per side, ${options.connections} connections` +
      `${options.smoke ? '' : ' (a few minutes)'}`,
  );
  try {
    const results = await run(options, cleanup);
    const report = renderReport(results);
    process.stdout.write(`\n${report}\n`);
    const resultsPath = options.resultsPath ?? join(tmpdir(), 'workspaces-bench-results.json');
    await writeFile(resultsPath, `${JSON.stringify(results, null, 2)}\n`);
    say(`raw numbers: ${resultsPath}`);
    if (results.failures.length > 0) {
      say(`BROKEN (${results.failures.length}): ${results.failures.join(' | ')}`);
      if (options.writeReport) say('BENCHMARKS.md left as it was');
      return 1;
    }
    if (options.writeReport) {
      writeBenchmarksFile(join(REPO_ROOT, 'BENCHMARKS.md'), report);
      say('results written to BENCHMARKS.md');
    }
    return 0;
  } catch (error) {
    if (stopping) return 130;
    say(`FAILED: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  } finally {
    await cleanup.run();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    say(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
