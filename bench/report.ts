/**
 * The report: markdown tables with the targets and whether each is met, printed and written
 * below the marker of BENCHMARKS.md (the hand-written intro above it stays), and the raw
 * numbers as JSON. A missed target is reported, never an error.
 * @module
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { SideResult } from './measure';
import type { ProvisionResult } from './provision';
import { renderProfiles, type ProfileSummary } from './profile';
import { EXPLICIT_MEMBERSHIPS } from './seed';

export type ScenarioKey =
  | 'get'
  | 'trpc'
  | 'settings'
  | 'listOrganization'
  | 'listAll'
  | 'listDeep'
  | 'scaleGet'
  | 'scaleList'
  | 'memberList'
  | 'settingsPut'
  | 'create'
  | 'clone'
  | 'embedded';
export type SideKey =
  | 'service'
  | 'baseline'
  | 'warn'
  | 'noPrepare'
  | 'small'
  | 'large'
  // a plain member's list: the 1,000-workspace organization, the visible one (first page, deep page), the private one
  | 'reference'
  | 'visible'
  | 'visibleDeep'
  | 'private';

export interface SideSummary extends SideResult {
  /** PostgreSQL round trips per request; null where there is no wire (the embedded database). */
  roundTrips: number | null;
}

export interface Results {
  machine: { cpu: string; cores: number; node: string; postgres: string; date: string };
  run: { smoke: boolean; rounds: number; seconds: number; connections: number; roundTripRequests: number; provisionCalls: number };
  seed: {
    organizations: number;
    workspacesPerOrganization: number;
    scaleSmall: number;
    scaleLarge: number;
    provisionFull: number;
    /** The plain member's organizations: one of visible workspaces, one of private ones. */
    memberList: number;
    memberListDeepOffset: number;
    totalWorkspaces: number;
  };
  scenarios: Partial<Record<ScenarioKey, Partial<Record<SideKey, SideSummary>>>>;
  provision: ProvisionResult[];
  rssKb: { service: number | null; baseline: number | null };
  profiles: ProfileSummary[];
  failures: string[];
  elapsedSeconds: number;
}

export const MARKER = '<!-- Everything below this line is written by `npm run bench`. -->';

const n = (value: number | null | undefined, digits = 0) =>
  value === null || value === undefined || Number.isNaN(value)
    ? '—'
    : value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const ms = (value: number | null | undefined) => n(value, value !== undefined && value !== null && value < 10 ? 2 : 1);
const pair = (a: string, b: string) => `${a} / ${b}`;
const times = (value: number) => (Number.isNaN(value) ? '—' : `${value.toFixed(2)}×`);
const verdict = (met: boolean | null) => (met === null ? '—' : met ? 'met' : '**not met**');
const mib = (kb: number | null) => (kb === null ? '—' : `${(kb / 1024).toFixed(0)} MiB`);

interface Row {
  title: string;
  scenario: ScenarioKey;
  side: SideKey;
  /** The side it is compared with; default: the scenario's baseline. */
  against?: { scenario: ScenarioKey; side: SideKey; label?: string };
  minRatio?: number;
}

const READ_ROWS: Row[] = [
  { title: 'REST get by id', scenario: 'get', side: 'service', minRatio: 0.7 },
  { title: 'tRPC get by id (httpBatchLink GET)', scenario: 'trpc', side: 'service', minRatio: 0.5 },
  { title: 'settings get (effective resolution)', scenario: 'settings', side: 'service', minRatio: 0.7 },
  { title: 'list, first page, one organization (limit 20)', scenario: 'listOrganization', side: 'service', minRatio: 0.4 },
  { title: 'list, first page, all 100 organizations (limit 20)', scenario: 'listAll', side: 'service', minRatio: 0.4 },
  { title: 'list, page 9,000 rows deep, all organizations (limit 20)', scenario: 'listDeep', side: 'service', minRatio: 0.4 },
  { title: 'REST get, DATABASE_PREPARE=false', scenario: 'get', side: 'noPrepare', minRatio: 0.4 },
  { title: 'REST get, LOG_LEVEL=warn', scenario: 'get', side: 'warn' },
  {
    title: 'REST get, embedded PGlite (no baseline on this engine)',
    scenario: 'embedded',
    side: 'service',
    against: { scenario: 'get', side: 'baseline', label: 'vs the PostgreSQL baseline' },
  },
];

const WRITE_ROWS: Array<{ title: string; scenario: ScenarioKey }> = [
  { title: 'settings put (flip a feature flag, 1,000 workspaces in turn)', scenario: 'settingsPut' },
  { title: 'create (POST /workspaces, unique names, 100 organizations in turn)', scenario: 'create' },
  { title: 'clone (POST /workspaces/{id}/clone)', scenario: 'clone' },
];

/**
 * A plain member's list (service only): each row's p50 against another side of the same
 * alternating rounds — the first pages against the 1,000-workspace organization's, the deep page
 * against the first page of its organization.
 */
function memberListTable(results: Results): string[] {
  const size = results.seed.memberList.toLocaleString('en-US');
  const small = results.seed.scaleSmall.toLocaleString('en-US');
  const deep = results.seed.memberListDeepOffset.toLocaleString('en-US');
  const rows: Array<{ key: SideKey; title: string; against?: { key: SideKey; name: string }; maxRatio?: number }> = [
    { key: 'reference', title: `first page, ${small}-workspace organization (a quarter private): the reference` },
    {
      key: 'visible',
      title: `first page, ${size} workspaces visible to the organization`,
      against: { key: 'reference', name: 'the reference' },
      maxRatio: 1.5,
    },
    {
      key: 'private',
      title: `first page, ${size} private workspaces, ${EXPLICIT_MEMBERSHIPS} explicit memberships`,
      against: { key: 'reference', name: 'the reference' },
      maxRatio: 1.5,
    },
    {
      key: 'visibleDeep',
      title: `page ${deep} rows deep, ${size} visible workspaces`,
      against: { key: 'visible', name: 'its first page' },
      maxRatio: 1.2,
    },
  ];
  const lines = [
    "| a plain member's list (limit 20, service only) | req/s | p50 ms | p99 ms | CPU µs/req | DB round trips/req | p50 ratio | target | met? |",
    '|---|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const row of rows) {
    const s = side(results, 'memberList', row.key);
    if (!s) continue;
    const against = row.against && side(results, 'memberList', row.against.key);
    const ratio = against ? s.p50 / against.p50 : NaN;
    const met = row.maxRatio === undefined || Number.isNaN(ratio) ? null : ratio <= row.maxRatio;
    const failed = s.failures.length > 0 ? ' **FAILED**' : '';
    lines.push(
      `| ${row.title}${failed} | ${n(s.rps)} | ${ms(s.p50)} | ${ms(s.p99)} | ${n(s.cpuUsPerRequest)} | ${n(s.roundTrips, 1)} | ` +
        `${row.against ? `${times(ratio)} of ${row.against.name}` : '—'} | ${row.maxRatio === undefined ? '—' : `≤ ${row.maxRatio}×`} | ${verdict(met)} |`,
    );
  }
  return lines;
}

function side(results: Results, scenario: ScenarioKey, key: SideKey): SideSummary | undefined {
  return results.scenarios[scenario]?.[key];
}

function readTable(results: Results): string[] {
  const lines = [
    '| scenario | service req/s | baseline req/s | service / baseline | p50 ms (S / B) | p99 ms (S / B) | CPU µs/req (S / B) | DB round trips/req (S / B) | target | met? |',
    '|---|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const row of READ_ROWS) {
    const s = side(results, row.scenario, row.side);
    const against = row.against ?? { scenario: row.scenario, side: 'baseline' as const };
    const b = side(results, against.scenario, against.side);
    if (!s) continue;
    const ratio = b ? s.rps / b.rps : NaN;
    const met = row.minRatio === undefined || Number.isNaN(ratio) ? null : ratio >= row.minRatio;
    const failed = s.failures.length > 0 ? ' **FAILED**' : '';
    lines.push(
      `| ${row.title}${failed} | ${n(s.rps)} | ${n(b?.rps)} | ${times(ratio)}${against.label ? ` ${against.label}` : ''} | ${pair(ms(s.p50), ms(b?.p50))} | ${pair(ms(s.p99), ms(b?.p99))} | ${pair(n(s.cpuUsPerRequest), n(b?.cpuUsPerRequest))} | ${pair(n(s.roundTrips, 1), n(b?.roundTrips, 1))} | ${row.minRatio === undefined ? '—' : `≥ ${row.minRatio}×`} | ${verdict(met)} |`,
    );
  }
  return lines;
}

function writeTable(results: Results): string[] {
  const lines = ['| scenario (service only) | req/s | p50 ms | p99 ms | CPU µs/req | DB round trips/req |', '|---|--:|--:|--:|--:|--:|'];
  for (const row of WRITE_ROWS) {
    const s = side(results, row.scenario, 'service');
    if (!s) continue;
    const failed = s.failures.length > 0 ? ' **FAILED**' : '';
    lines.push(`| ${row.title}${failed} | ${n(s.rps)} | ${ms(s.p50)} | ${ms(s.p99)} | ${n(s.cpuUsPerRequest)} | ${n(s.roundTrips, 1)} |`);
  }
  return lines;
}

function derivedTable(results: Results): string[] {
  const lines = ['| measure | value | target | met? |', '|---|---|--:|---|'];
  const add = (measure: string, value: string, target: string, met: boolean | null) =>
    lines.push(`| ${measure} | ${value} | ${target} | ${verdict(met)} |`);

  const first = side(results, 'listAll', 'service');
  const deep = side(results, 'listDeep', 'service');
  if (first && deep) {
    const ratio = deep.p50 / first.p50;
    add(
      'list: deep page p50 / first page p50 (all organizations)',
      `${ms(deep.p50)} / ${ms(first.p50)} ms = ${times(ratio)}`,
      '≤ 1.2×',
      ratio <= 1.2,
    );
  }
  const large = results.seed.scaleLarge.toLocaleString('en-US');
  const small = results.seed.scaleSmall.toLocaleString('en-US');
  for (const [scenario, what, target] of [
    ['scaleGet', 'get by id', 1.2],
    ['scaleList', 'list first page', undefined],
  ] as const) {
    const s = side(results, scenario, 'small');
    const l = side(results, scenario, 'large');
    if (!s || !l) continue;
    const ratio = l.p50 / s.p50;
    const failed = s.failures.length + l.failures.length > 0 ? ' **FAILED**' : '';
    add(
      `${what} p50 in a ${large}-workspace organization / in a ${small}-workspace one${failed}`,
      `${ms(l.p50)} / ${ms(s.p50)} ms = ${times(ratio)} (${n(l.rps)} / ${n(s.rps)} req/s)`,
      target === undefined ? '—' : `≤ ${target}×`,
      target === undefined ? null : ratio <= target,
    );
  }
  for (const p of results.provision) {
    add(
      `provision 1,000 (atomic), ${p.label}: ms per call, p50 of ${p.msPerCall.length}`,
      `${ms(p.p50)} ms (${p.msPerCall.map((t) => t.toFixed(0)).join(', ')})`,
      '≤ 150 ms',
      p.p50 <= 150,
    );
  }
  const [empty, full] = results.provision;
  if (empty && full) {
    const ratio = full.p50 / empty.p50;
    add(`provision 1,000: p50 ${full.label} / ${empty.label}`, times(ratio), '≤ 1.2×', ratio <= 1.2);
    const trips = results.provision.flatMap((p) => [p.roundTrips, p.roundTripsSmallBatch]);
    add(
      'provision: DB round trips per call (1,000 items / 10 items)',
      results.provision.map((p) => `${p.label} ${n(p.roundTrips, 1)} / ${n(p.roundTripsSmallBatch, 1)}`).join(' · '),
      'constant',
      trips.every((t) => t === trips[0]),
    );
  }
  const rss = results.rssKb;
  add(
    'service RSS, max during the REST get rounds',
    mib(rss.service),
    '≤ 180 MiB',
    rss.service === null ? null : rss.service / 1024 <= 180,
  );
  add('baseline RSS, max during the REST get rounds', mib(rss.baseline), '—', null);
  return lines;
}

export function renderReport(results: Results): string {
  const m = results.machine;
  const r = results.run;
  const s = results.seed;
  const minutes = Math.floor(results.elapsedSeconds / 60);
  const lines = [
    `Machine: ${m.cpu}, ${m.cores} cores · Node ${m.node} · PostgreSQL ${m.postgres} · ${m.date}`,
    '',
    `Run: ${r.smoke ? 'SMOKE (not a measurement) · ' : ''}${r.connections} connections, ${r.rounds} alternating rounds of ${r.seconds} s per side (medians), ` +
      `round trips over ${r.roundTripRequests} sequential requests, ${r.provisionCalls} provisioning calls per organization · ` +
      `seed: ${s.organizations} organizations × ${s.workspacesPerOrganization} workspaces, organizations of ${s.scaleSmall.toLocaleString('en-US')}, ` +
      `${s.scaleLarge.toLocaleString('en-US')} and ${s.provisionFull.toLocaleString('en-US')}, two of ${s.memberList.toLocaleString('en-US')} for a plain member ` +
      `(all visible to the organization; all private, ${EXPLICIT_MEMBERSHIPS} of them theirs) (${s.totalWorkspaces.toLocaleString('en-US')} workspaces in all) · ` +
      `took ${minutes} min ${Math.round(results.elapsedSeconds - minutes * 60)} s`,
    '',
    ...readTable(results),
    '',
    ...memberListTable(results),
    '',
    ...writeTable(results),
    '',
    ...derivedTable(results),
  ];
  if (results.profiles.length > 0) lines.push('', ...renderProfiles(results.profiles));
  if (results.failures.length > 0) lines.push('', '**Broken:**', '', ...results.failures.map((f) => `- ${f}`));
  return `${lines.join('\n')}\n`;
}

/** Replaces what follows the marker; the intro above it is kept as written. */
export function writeBenchmarksFile(path: string, report: string): void {
  let intro = '# Benchmarks\n\n';
  try {
    const current = readFileSync(path, 'utf8');
    const at = current.indexOf(MARKER);
    intro = at === -1 ? `${current.trimEnd()}\n\n` : current.slice(0, at);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  writeFileSync(path, `${intro}${MARKER}\n\n## Results\n\n${report}`);
}
