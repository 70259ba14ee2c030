/**
 * Where the service's CPU goes in a scenario: the service is started with `node --cpu-prof`,
 * loaded alone, stopped (the profile is written at exit), and its samples are summed by self
 * time, per function and per component (an npm package, the service's own code, a Node
 * internal, the garbage collector). Only samples of the measured load count: those before it
 * (start-up, module compilation, the warm-up) and idle ones are left out.
 * @module
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The parts of a V8 .cpuprofile this reads. */
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileShare {
  name: string;
  /** Share of the busy (non-idle) samples in the window, in %. */
  percent: number;
}

export interface ProfileSummary {
  label: string;
  busyMs: number;
  components: ProfileShare[];
  functions: ProfileShare[];
}

/** The npm package of a script URL, or what else it is. */
function componentOf(url: string, functionName: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.includes('/dist/') || url.includes('/src/')) return 'the service (src/)';
  if (url.startsWith('node:')) return `Node: ${url.slice('node:'.length).replace(/^internal\//, '')}`;
  if (functionName === '(garbage collector)') return 'garbage collector';
  if (functionName === '(program)') return 'V8 (program)';
  // Builtins without a script: socket writes (writev, writeBuffer), microtask runs, JSON, regexps.
  return 'native (no script)';
}

/** A function's name with where it is: package-relative or repository-relative, and its line. */
function functionKey(frame: CpuProfile['nodes'][number]['callFrame']): string {
  const { url } = frame;
  const where = url.includes('node_modules/')
    ? url.replace(/^.*node_modules\//, '')
    : url.replace(/^(?:file:\/\/)?.*\/(dist|src)\//, '$1/');
  const name = frame.functionName || '(anonymous)';
  return where ? `${name} (${where}:${frame.lineNumber + 1})` : name;
}

const top = (totals: Map<string, number>, busy: number, count: number): ProfileShare[] =>
  [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, micros]) => ({ name, percent: (100 * micros) / busy }));

/**
 * Sums the one profile in `dir` over its last `windowMs` (the measured load and the stop after
 * it): self time per function and per component, as shares of the busy time.
 */
export function summarizeProfile(label: string, dir: string, windowMs: number, count = 15): ProfileSummary {
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}: the service did not exit normally`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const from = profile.endTime - windowMs * 1000;
  const byFunction = new Map<string, number>();
  const byComponent = new Map<string, number>();
  let at = profile.startTime;
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    const frame = frames.get(id)!;
    if (at < from || frame.functionName === '(idle)') return;
    busy += delta;
    const fn = functionKey(frame);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + delta);
    const component = componentOf(frame.url, frame.functionName);
    byComponent.set(component, (byComponent.get(component) ?? 0) + delta);
  });
  return { label, busyMs: busy / 1000, components: top(byComponent, busy, count), functions: top(byFunction, busy, count) };
}

/** Markdown: per profiled scenario, its components and its functions by self time. */
export function renderProfiles(profiles: ProfileSummary[]): string[] {
  if (profiles.length === 0) return [];
  const lines = [
    '## Profiles',
    '',
    'Self time of the service process under each scenario alone (`node --cpu-prof`, the production',
    'build, `LOG_LEVEL=info`), as shares of its busy CPU during the measured load; start-up, warm-up',
    'and idle time left out. "native (no script)" is V8 builtins and C++ bindings with no script of',
    'their own: mostly the socket writes (`writev` for responses, `writeBuffer` for queries).',
    "`dist/main.js` is the service's own code (the esbuild bundle of src/).",
  ];
  for (const p of profiles) {
    lines.push('', `### ${p.label} (${p.busyMs.toFixed(0)} ms busy)`, '', '| component | self | function | self |', '|---|--:|---|--:|');
    const rows = Math.max(p.components.length, p.functions.length);
    for (let i = 0; i < rows; i++) {
      const c = p.components[i];
      const f = p.functions[i];
      const cell = (share: ProfileShare | undefined) =>
        share ? [share.name.replace(/\|/g, '\\|'), `${share.percent.toFixed(1)} %`] : ['', ''];
      lines.push(`| ${cell(c).join(' | ')} | ${cell(f).join(' | ')} |`);
    }
  }
  return lines;
}
