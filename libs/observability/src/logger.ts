import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** The service name, written on every line as `service`. */
  service: string;
  level?: LevelWithSilent;
  /** Where lines go; standard output by default. */
  destination?: NodeJS.WritableStream;
}

/** A structured (JSON lines) logger. Services log through this, never through console. */
export function createLogger(options: LoggerOptions): Logger {
  const base = { service: options.service, pid: process.pid };
  const config = { base, level: options.level ?? 'info', timestamp: pino.stdTimeFunctions.isoTime };
  return options.destination === undefined ? pino(config) : pino(config, options.destination);
}
