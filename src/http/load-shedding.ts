/**
 * Load shedding: while the event loop is saturated, new API requests are refused with 503
 * before they start any work, so the work already admitted can finish and the process
 * recovers instead of queueing ever more.
 *
 * Saturation is read from Node's own instruments: `monitorEventLoopDelay` (a libuv timer
 * that fires every 10 ms and records how late it was) and `performance.eventLoopUtilization`.
 * Every 100 ms a tick folds the last 100 ms into a sliding window of the last second; the
 * window's **delay** is the mean lateness of those timer firings, so it measures how long a
 * turn of the loop takes, on average, while it is busy — a request that arrives waits about
 * that long before its first callback. A single long stall followed by an idle loop is
 * diluted by the idle turns after it (an idle 100 ms holds ten turns of ~0 ms), while a loop
 * that stays busy keeps it high. (The histogram timer may fire after ours in the same turn,
 * so a stall can count in the tick after the one it ended in: about 0.1 s of lag.) Shedding
 * starts when the window is over a limit and stops when it is back under half of it.
 *
 * Only a request's start is judged: work already admitted runs to its end (that is what the
 * loop is busy with), and nothing else (/healthz, /docs) is refused.
 *
 * The libraries made for this (toobusy-js, overload-protection) answer with bodies of their
 * own, not the contract's error shape, and @fastify/under-pressure serves Fastify only; the
 * built-ins are all they use anyway.
 * @module
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { AppError } from '../lib/errors';

/** How often the window moves on. */
export const SAMPLE_INTERVAL_MS = 100;
/** How much of the recent past a decision looks at. */
export const WINDOW_MS = 1000;
/** The period of `monitorEventLoopDelay`'s timer; its lateness is what it records beyond this. */
const RESOLUTION_MS = 10;
/**
 * Shedding stops once every measure is back under this share of its limit, not just under it:
 * a window that still holds the busy past hovers around the limit, and would flap (a warning
 * each time) as the last of the work drains.
 */
export const RECOVERY_SHARE = 0.5;
/** What refused requests are told: the window moves every 0.1 s, so a second later things have changed. */
export const SHED_RETRY_AFTER_SECONDS = 1;

export interface ShedThresholds {
  /** Mean event-loop delay over the window above which requests are refused; 0 turns the check off. */
  maxEventLoopDelayMs: number;
  /** Event-loop utilization (0–1) over the window above which requests are refused; 0 turns the check off. */
  maxEventLoopUtilization: number;
}

/** What one tick measured over the time since the previous one. */
export interface LoopSample {
  /** When the tick ran (ms, monotonic). */
  at: number;
  /** Time covered by the sample. */
  elapsedMs: number;
  /** Firings of the 10 ms timer recorded in it. */
  turns: number;
  /** Their lateness added up (ms beyond 10 ms each). */
  lateMs: number;
  /** Time the loop spent running callbacks in it (ms). */
  activeMs: number;
}

/** The window's state: the measurements and, while shedding, since when. */
export interface LoopState {
  /** Mean event-loop delay over the window, ms. */
  delayMs: number;
  /** Share of the window the loop was busy, 0–1. */
  utilization: number;
}

export interface Overload extends LoopState {
  /** Since when requests are refused (ms, monotonic). */
  since: number;
  /** Why, for /readyz and the log. */
  reason: string;
}

/**
 * The decision, without timers: samples go in (from the sampler below, or a test), and it
 * says whether new requests are refused now. Logs one warning when shedding starts and one
 * when it stops.
 */
export class LoadShedder {
  private window: LoopSample[] = [];
  private overload: Overload | undefined;
  private refused = 0;
  private stopTimers: () => void = () => {};

  constructor(
    readonly thresholds: ShedThresholds,
    private readonly logger: Pick<Logger, 'warn'>,
  ) {}

  /** Whether any check is on (both thresholds 0: never sheds, and no sampler runs). */
  get enabled(): boolean {
    return this.thresholds.maxEventLoopDelayMs > 0 || this.thresholds.maxEventLoopUtilization > 0;
  }

  /** The window as it stands. */
  measure(): LoopState {
    let elapsed = 0;
    let turns = 0;
    let late = 0;
    let active = 0;
    for (const sample of this.window) {
      elapsed += sample.elapsedMs;
      turns += sample.turns;
      late += sample.lateMs;
      active += sample.activeMs;
    }
    return {
      // No firing at all: the loop was blocked for the whole window.
      delayMs: turns > 0 ? late / turns : elapsed,
      utilization: elapsed > 0 ? Math.min(1, active / elapsed) : 0,
    };
  }

  /** Adds a sample, drops those older than the window, and decides again. */
  record(sample: LoopSample): void {
    this.window.push(sample);
    while (this.window.length > 1 && this.window[0]!.at <= sample.at - WINDOW_MS) this.window.shift();
    const state = this.measure();
    // While shedding, the limits to stay under are lower (RECOVERY_SHARE).
    const reason = this.exceeded(state, this.overload ? RECOVERY_SHARE : 1);
    if (reason && !this.overload) {
      this.overload = { ...state, since: sample.at, reason };
      this.refused = 0;
      this.logger.warn(
        { eventLoopDelayMs: round(state.delayMs), eventLoopUtilization: round(state.utilization, 2), ...this.thresholds },
        `load shedding started: ${reason}; new API requests are refused with 503`,
      );
    } else if (reason && this.overload) {
      this.overload = { ...this.overload, ...state, reason };
    } else if (!reason && this.overload) {
      this.logger.warn(
        { durationMs: round(sample.at - this.overload.since), refused: this.refused, eventLoopDelayMs: round(state.delayMs) },
        'load shedding stopped: the event loop keeps up again',
      );
      this.overload = undefined;
    }
  }

  private exceeded({ delayMs, utilization }: LoopState, share: number): string | undefined {
    const { maxEventLoopDelayMs, maxEventLoopUtilization } = this.thresholds;
    if (maxEventLoopDelayMs > 0 && delayMs > maxEventLoopDelayMs * share) {
      return `event-loop delay ${round(delayMs)} ms over the last second (limit ${maxEventLoopDelayMs} ms)`;
    }
    if (maxEventLoopUtilization > 0 && utilization > maxEventLoopUtilization * share) {
      return `event-loop utilization ${round(utilization, 2)} over the last second (limit ${maxEventLoopUtilization})`;
    }
    return undefined;
  }

  /** Why the service is shedding now, or undefined (for /readyz; counts nothing). */
  current(): Overload | undefined {
    return this.overload;
  }

  /** The error a new API request is refused with now (and counts it), or undefined to admit it. */
  refusal(): AppError | undefined {
    if (!this.overload) return undefined;
    this.refused++;
    return new AppError('SERVICE_UNAVAILABLE', 'The service is overloaded; try again shortly', { retryAfter: SHED_RETRY_AFTER_SECONDS });
  }

  /** Starts measuring the event loop (unless no check is on). Timers are unref'd; `stop()` ends them. */
  start(): this {
    if (!this.enabled) return this;
    this.stopTimers();
    const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    histogram.enable();
    let lastAt = performance.now();
    let lastUtilization: EventLoopUtilization = performance.eventLoopUtilization();
    const timer = setInterval(() => {
      const at = performance.now();
      const utilization = performance.eventLoopUtilization();
      const turns = histogram.count;
      // The histogram records each firing's whole interval (10 ms when on time), in ns.
      const lateMs = turns > 0 ? Math.max(0, (histogram.mean / 1e6 - RESOLUTION_MS) * turns) : 0;
      histogram.reset();
      this.record({
        at,
        elapsedMs: at - lastAt,
        turns,
        lateMs,
        activeMs: performance.eventLoopUtilization(utilization, lastUtilization).active,
      });
      lastAt = at;
      lastUtilization = utilization;
    }, SAMPLE_INTERVAL_MS);
    timer.unref();
    this.stopTimers = () => {
      clearInterval(timer);
      histogram.disable();
    };
    return this;
  }

  /** Stops measuring; nothing is refused afterwards. */
  stop(): void {
    this.stopTimers();
    this.stopTimers = () => {};
    this.window = [];
    this.overload = undefined;
  }
}

const round = (value: number, digits = 0) => Math.round(value * 10 ** digits) / 10 ** digits;
