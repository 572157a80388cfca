export { createLogger } from './logger.js';
export type { Logger, LoggerOptions } from './logger.js';
export { initTelemetry } from './telemetry.js';
export type { Telemetry, TelemetryOptions } from './telemetry.js';
export { healthPlugin, startHealthServer } from './health.js';
export type { CheckResult, HealthPluginOptions, HealthServerOptions, ReadinessChecks } from './health.js';
export { inSpan } from './span.js';
