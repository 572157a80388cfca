/**
 * A readers–writer lock for async code: any number of shared holders, or one
 * exclusive holder. Garbage collection takes it exclusively; every operation
 * that adds or references content or snapshots takes it shared, so GC never
 * sweeps something a concurrent operation is about to use.
 */
export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: Array<{ exclusive: boolean; wake: () => void }> = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await fn();
    } finally {
      this.readers -= 1;
      this.drain();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.drain();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    return new Promise((resolve) => {
      this.queue.push({ exclusive, wake: resolve });
      this.drain();
    });
  }

  private drain(): void {
    while (this.queue.length > 0 && !this.writer) {
      const next = this.queue[0]!;
      if (next.exclusive) {
        if (this.readers > 0) return;
        this.queue.shift();
        this.writer = true;
        next.wake();
        return;
      }
      this.queue.shift();
      this.readers += 1;
      next.wake();
    }
  }
}

/** Runs functions one at a time (per instance), in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn, fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
