/**
 * Long synchronous work cut into slices, with the event loop served between them: one
 * request's batch of a thousand items must not hold every other request (and the health
 * checks) for the whole of its planning.
 * @module
 */

/** Items worked on between two turns of the event loop: well under 10 ms of work each. */
export const SLICE_SIZE = 100;

/** Resolves on the next turn of the event loop, after the I/O that is waiting. */
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Calls `work` on each item in order, yielding to the event loop after every `size` items. */
export async function forEachInSlices<T>(items: readonly T[], work: (item: T, index: number) => void, size = SLICE_SIZE): Promise<void> {
  for (let start = 0; start < items.length; start += size) {
    if (start > 0) await yieldToEventLoop();
    const end = Math.min(items.length, start + size);
    for (let index = start; index < end; index++) work(items[index]!, index);
  }
}
