import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `fn` every 50 ms until it returns something other than undefined; fails after `ms`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
