// What an exec or attach connection carries once its wire (SPDY or
// WebSocket) is set up: the process's stdio as Node streams, terminal
// resizes, and the way its outcome is reported (the error stream).
import type { Readable, Writable } from 'node:stream';

export interface TerminalSize {
  width: number;
  height: number;
}

export type Outcome = { exitCode: number } | { error: string };

export interface Channels {
  stdin: Readable | undefined;
  stdout: Writable | undefined;
  stderr: Writable | undefined;
  /** Calls `fn` for each terminal size the client sends. */
  onResize(fn: (size: TerminalSize) => void): void;
  /** Aborted when the client goes away before the session ends. */
  readonly gone: AbortSignal;
  /** Reports the outcome on the error stream and closes the connection. */
  finish(outcome: Outcome): void;
}

/**
 * Terminal sizes from the client. A listener added late (the process starts
 * after the client's first message) still gets the latest size at once.
 */
export class ResizeFeed {
  private last: TerminalSize | undefined;
  private readonly listeners: ((s: TerminalSize) => void)[] = [];
  private pending = '';

  /** Feeds raw resize-stream bytes. */
  push(bytes: Buffer): void {
    this.pending = parseResizes(this.pending + bytes.toString(), (size) => {
      this.last = size;
      for (const fn of this.listeners) fn(size);
    });
  }

  on(fn: (size: TerminalSize) => void): void {
    this.listeners.push(fn);
    if (this.last !== undefined) fn(this.last);
  }
}

/** How the outcome is written: a v4 Status object, or (older protocols) plain text only on failure. */
export function encodeOutcome(outcome: Outcome, jsonStatus: boolean): Buffer | undefined {
  const message = 'error' in outcome ? outcome.error : outcome.exitCode === 0 ? '' : `command terminated with non-zero exit code: exit status ${outcome.exitCode}`;
  if (!jsonStatus) return message === '' ? undefined : Buffer.from(message);
  if (message === '') return Buffer.from(JSON.stringify({ metadata: {}, status: 'Success' }));
  const status =
    'error' in outcome
      ? { metadata: {}, status: 'Failure', message, reason: 'InternalError', details: { causes: [{ message }] }, code: 500 }
      : { metadata: {}, status: 'Failure', message, reason: 'NonZeroExitCode', details: { causes: [{ reason: 'ExitCode', message: String(outcome.exitCode) }] } };
  return Buffer.from(JSON.stringify(status));
}

/**
 * Parses the resize stream: concatenated JSON objects `{"Width":..,"Height":..}`
 * (Go's json.Encoder writes one per line). Returns the unparsed rest.
 */
export function parseResizes(buffered: string, emit: (size: TerminalSize) => void): string {
  let rest = buffered;
  for (;;) {
    const end = rest.indexOf('}');
    if (end < 0) return rest.length > 4096 ? '' : rest;
    const text = rest.slice(rest.indexOf('{'), end + 1);
    rest = rest.slice(end + 1);
    try {
      const v = JSON.parse(text) as { Width?: unknown; Height?: unknown };
      const width = Number(v.Width);
      const height = Number(v.Height);
      if (Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0 && width < 65536 && height < 65536) emit({ width, height });
    } catch {
      // A malformed size is ignored, as the kubelet does.
    }
  }
}
