/**
 * Long synchronous work cut into slices, with the event loop served between them: one
 * request's batch of a thousand items must not hold every other request (and the health
 * checks) for the whole of its planning.
 * @module
 */

/** How long one slice may hold the event loop before it yields. Items cost from microseconds to milliseconds (a template of 2,600 settings leaves), so slices are cut by time, not count. */
export const SLICE_MS = 10;

/** Resolves on the next turn of the event loop, after the I/O that is waiting. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Calls `work` on each item in order, yielding to the event loop whenever a slice has run SLICE_MS. */
export async function forEachInSlices<T>(items: readonly T[], work: (item: T, index: number) => void): Promise<void> {
  let sliceStarted = performance.now();
  for (let index = 0; index < items.length; index++) {
    work(items[index]!, index);
    if (performance.now() - sliceStarted >= SLICE_MS) {
      await yieldToEventLoop();
      sliceStarted = performance.now();
    }
  }
}
