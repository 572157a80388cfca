import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError } from '@berth/errors';
import { imageQueueGroup, subjects } from './subjects.js';

/** How one bus user logs in to the nats-server berthd starts. */
export interface BusCredentials {
  user: string;
  password: string;
}

/** What one bus user may do: subjects it may publish to and subscribe to (`subject queue` for a queue group only). */
export interface BusPermissions {
  publish: readonly string[];
  subscribe: readonly string[];
  /** May publish replies to the requests it received (each reply subject once). */
  allowResponses?: boolean;
}

/**
 * A user's reply subjects: Bus.connect gives the connection this inbox
 * prefix, so one user's replies cannot be read by another.
 */
export const inboxPrefixFor = (user: string): string => `_INBOX.${user}`;
const inbox = (user: string): string => `${inboxPrefixFor(user)}.>`;

/** The nats.js connect options that log in as `credentials` (none: no login), with the user's own inbox prefix. */
export function natsLogin(credentials: BusCredentials | undefined): { user?: string; pass?: string; inboxPrefix?: string } {
  return credentials === undefined ? {} : { user: credentials.user, pass: credentials.password, inboxPrefix: inboxPrefixFor(credentials.user) };
}

const started = subjects.serviceStarted.subject;

/**
 * Who may do what on Berth's own bus. Only the executor publishes container
 * and pod events; only image replicas receive `berth.image.*` requests, and
 * only in the queue group `image`; the CRI and the executor send those
 * requests and read their replies on their own inboxes; `berthctl` (pull
 * progress) only listens to progress. Everything not listed is refused by
 * the server.
 */
export const busPermissions: Readonly<Record<'store' | 'executor' | 'image' | 'cri' | 'berthctl', BusPermissions>> = {
  store: { publish: [started], subscribe: [] },
  executor: { publish: [started, subjects.containerEvent.subject, subjects.imagePull.subject], subscribe: [inbox('executor')] },
  image: {
    publish: [started, subjects.pullProgress.subject],
    subscribe: [`${subjects.imageInfo.subject} ${imageQueueGroup}`, `${subjects.imagePull.subject} ${imageQueueGroup}`],
    allowResponses: true,
  },
  cri: {
    publish: [started, subjects.imageInfo.subject, subjects.imagePull.subject],
    subscribe: [inbox('cri'), subjects.pullProgress.subject, subjects.containerEvent.subject],
  },
  berthctl: { publish: [], subscribe: [subjects.pullProgress.subject] },
};

export type BusUser = keyof typeof busPermissions;

const list = (subjectsAllowed: readonly string[]): string =>
  subjectsAllowed.length === 0 ? '{ deny: [">"] }' : `{ allow: [${subjectsAllowed.map((s) => JSON.stringify(s)).join(', ')}] }`;

/** The nats-server configuration text of an `authorization` block for these users. */
export function natsAuthorization(users: ReadonlyArray<BusCredentials & { permissions: BusPermissions }>): string {
  const lines = users.map(({ user, password, permissions: p }) => {
    const responses = p.allowResponses === true ? ', allow_responses: true' : '';
    return `    { user: ${JSON.stringify(user)}, password: ${JSON.stringify(password)}, permissions: { publish: ${list(p.publish)}, subscribe: ${list(p.subscribe)}${responses} } }`;
  });
  return `authorization {\n  users = [\n${lines.join('\n')}\n  ]\n}\n`;
}

export interface BusAuthFiles {
  /** The nats-server configuration file (`nats-server -c`). */
  configFile: string;
  /** The credentials file of one user (JSON `{ user, password }`, mode 0600). */
  credentialsFile(user: BusUser): string;
}

function writeSecret(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
  // The mode of writeFileSync applies only to a file it creates.
  chmodSync(path, 0o600);
}

/**
 * Writes, into `dir` (created or reset to mode 0700), a fresh random
 * password per bus user: `<user>.json` for each (0600) and `nats.conf`
 * (0600) with the users and their permissions. Repeating it replaces every
 * password, so a server started with the old file keeps the old ones.
 */
export function writeBusAuth(dir: string): BusAuthFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const users = (Object.keys(busPermissions) as BusUser[]).map((user) => ({
    user,
    password: randomBytes(32).toString('base64url'),
    permissions: busPermissions[user],
  }));
  for (const { user, password } of users) writeSecret(join(dir, `${user}.json`), `${JSON.stringify({ user, password })}\n`);
  const configFile = join(dir, 'nats.conf');
  writeSecret(configFile, `# Berth's bus users, written by berthd at each start.\n${natsAuthorization(users)}`);
  return { configFile, credentialsFile: (user) => join(dir, `${user}.json`) };
}

/** Reads a credentials file written by writeBusAuth. Throws `invalid-argument` when it is unreadable or malformed. */
export function readBusCredentials(path: string): BusCredentials {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`read the bus credentials ${path}`, { cause: err });
  }
  const { user, password } = (value ?? {}) as Partial<BusCredentials>;
  if (typeof user !== 'string' || typeof password !== 'string') throw new InvalidArgumentError(`${path}: not bus credentials (want { user, password })`);
  return { user, password };
}
