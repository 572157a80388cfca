// Single-use, expiring tokens for streaming URLs. A token is 24 random
// bytes (unguessable), is good for one connection, and expires after the
// configured time; the URL is the only credential the client needs.
import { randomBytes } from 'node:crypto';
import { ResourceExhaustedError } from '@berth/errors';

/** Requests waiting for their connection at once; the kubelet's cache holds as many. */
const maxPending = 1000;

export class TokenCache<T> {
  private readonly entries = new Map<string, { value: T; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Stores a request and returns its token. */
  issue(value: T): string {
    this.sweep();
    if (this.entries.size >= maxPending) throw new ResourceExhaustedError(`${maxPending} streaming requests are already waiting for their connection`);
    const token = randomBytes(24).toString('base64url');
    this.entries.set(token, { value, expires: this.now() + this.ttlMs });
    return token;
  }

  /** Takes a token's request: undefined when the token is unknown, used or expired. */
  consume(token: string): T | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    this.entries.delete(token);
    return entry.expires > this.now() ? entry.value : undefined;
  }

  private sweep(): void {
    const now = this.now();
    for (const [token, entry] of this.entries) if (entry.expires <= now) this.entries.delete(token);
  }
}
