// Users and groups inside an image: names from the image's /etc/passwd and
// /etc/group, read through the container's root so a symlink in the image
// cannot point the lookup at a host file.
import { lstat, readFile, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '@berth/errors';

const maxId = 2 ** 32 - 2;

/**
 * `path` (inside the container) resolved to a host path under `root`, every
 * symlink followed as if `root` were `/`. At most 40 links, as the kernel.
 */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  let parts: string[] = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, part);
    let st;
    try {
      st = await lstat(host);
    } catch {
      return join(root, ...done, part, ...parts);
    }
    if (!st.isSymbolicLink()) {
      done.push(part);
      continue;
    }
    if (++links > 40) throw new InvalidArgumentError(`too many symlinks resolving ${path} in the image`);
    const target = await readlink(host);
    if (target.startsWith('/')) done.length = 0;
    parts = [...target.split('/').filter(Boolean), ...parts];
  }
  return join(root, ...done);
}

async function readImageFile(root: string, path: string): Promise<string> {
  try {
    return await readFile(await resolveInRoot(root, path), 'utf8');
  } catch {
    return '';
  }
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

/** The user fields of a CRI security context (a sandbox's has no username). */
export interface RunAs {
  runAsUser?: { value: bigint } | undefined;
  runAsUsername?: string;
  runAsGroup?: { value: bigint } | undefined;
}

/**
 * Refuses run_as_group without run_as_user or run_as_username
 * (InvalidArgumentError): a group alone would be paired with whatever user
 * the image names. containerd refuses it in a container's and a sandbox's
 * security context alike, CRI-O in a container's.
 */
export function checkRunAs(sc: RunAs | undefined, what: string): void {
  if (sc?.runAsGroup !== undefined && sc.runAsUser === undefined && !sc.runAsUsername) {
    throw new InvalidArgumentError(`${what}: run_as_group ${sc.runAsGroup.value} is set without run_as_user or run_as_username`);
  }
}

/** The user a container's security context asks for, in resolveUser's terms; checked by checkRunAs. */
export function runAsOf(sc: RunAs | undefined): { uid?: number; username?: string; gid?: number } {
  checkRunAs(sc, 'container security context');
  return {
    ...(sc?.runAsUser !== undefined ? { uid: Number(sc.runAsUser.value) } : {}),
    ...(sc?.runAsUsername ? { username: sc.runAsUsername } : {}),
    ...(sc?.runAsGroup !== undefined ? { gid: Number(sc.runAsGroup.value) } : {}),
  };
}

function checkId(kind: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > maxId) throw new InvalidArgumentError(`${kind} ${value} is out of range (0 to ${maxId})`);
  return value;
}

/**
 * The process user: `uid`/`username`/`gid` from the CRI when given, else the
 * image config's `User` ("name", "uid", "name:group", "uid:gid"). Names are
 * looked up in the image; supplemental groups are the image's groups listing
 * the user, plus `extraGids`.
 */
export async function resolveUser(root: string, spec: { uid?: number; username?: string; gid?: number; imageUser: string; extraGids: number[] }): Promise<ResolvedUser> {
  const passwd = (await readImageFile(root, '/etc/passwd')).split('\n').map((l) => l.split(':'));
  const groups = (await readImageFile(root, '/etc/group')).split('\n').map((l) => l.split(':'));
  let userPart: string;
  let groupPart: string | undefined;
  if (spec.uid !== undefined) userPart = String(checkId('run_as_user', spec.uid));
  else if (spec.username) userPart = spec.username;
  else {
    [userPart = '', groupPart] = spec.imageUser.split(':');
    if (userPart === '') userPart = '0';
  }
  let uid: number;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  if (/^\d+$/.test(userPart)) {
    uid = checkId('uid', Number(userPart));
    const entry = passwd.find((p) => p[2] === userPart);
    if (entry) {
      gid = Number(entry[3] ?? 0);
      home = entry[5] || '/';
      name = entry[0];
    }
  } else {
    const entry = passwd.find((p) => p[0] === userPart);
    if (entry === undefined) throw new NotFoundError(`user ${JSON.stringify(userPart)} is not in the image's /etc/passwd`);
    uid = checkId('uid', Number(entry[2]));
    gid = Number(entry[3] ?? 0);
    home = entry[5] || '/';
    name = entry[0];
  }
  if (spec.gid !== undefined) gid = checkId('run_as_group', spec.gid);
  else if (groupPart !== undefined && groupPart !== '') {
    if (/^\d+$/.test(groupPart)) gid = checkId('gid', Number(groupPart));
    else {
      const g = groups.find((e) => e[0] === groupPart);
      if (g === undefined) throw new NotFoundError(`group ${JSON.stringify(groupPart)} is not in the image's /etc/group`);
      gid = checkId('gid', Number(g[2]));
    }
  }
  const additional = new Set<number>();
  if (name !== undefined) for (const g of groups) if ((g[3] ?? '').split(',').includes(name) && /^\d+$/.test(g[2] ?? '')) additional.add(Number(g[2]));
  for (const g of spec.extraGids) additional.add(checkId('supplemental group', g));
  return { uid, gid: checkId('gid', gid), additionalGids: [...additional].sort((a, b) => a - b), home };
}
