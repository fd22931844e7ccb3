// A lock file that says which process is using a directory: created with O_EXCL (only one process
// can create it), holding the process id and host. A second run sees "in use by process N" instead
// of stepping on a live run. A lock whose process is gone (SIGKILL, a crash) is taken over, and the
// caller is told so. The lock is released when the holder is done, and at the latest when its
// process exits.
import { readFileSync, unlinkSync } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { VlmqError } from '../errors.js';
import { fsError } from './files.js';

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

/** Whether process `pid` exists on this machine (EPERM: it exists, owned by someone else). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Locks this process holds, released at exit by one listener (not one per lock: a process may hold many). */
const held = new Set<DirectoryLock>();
let exitListener = false;

export class DirectoryLock {
  #released = false;

  private constructor(readonly path: string, private readonly owner: LockOwner) {
    held.add(this);
    if (!exitListener) {
      exitListener = true;
      process.on('exit', () => {
        for (const lock of held) lock.#releaseSync();
      });
    }
  }

  /**
   * Takes the lock at `path`, or fails with ERR_VLMQ_LOCKED naming the live process that holds it.
   * `onTakeover` hears of a stale lock (its process is gone) that was taken over.
   */
  static async acquire(path: string, what: string, onTakeover?: (message: string) => void): Promise<DirectoryLock> {
    const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
    // Two tries: the second follows the removal of a stale lock, racing any other process that
    // saw the same stale lock; O_EXCL lets exactly one of them win.
    for (let attempt = 0; attempt < 2; attempt++) {
      if (await createExclusive(path, `${JSON.stringify(owner)}\n`)) return new DirectoryLock(path, owner);
      const holder = await readOwner(path);
      if (holder !== null && (holder.host !== owner.host || isProcessAlive(holder.pid))) {
        const where = holder.host === owner.host ? '' : ` on host ${holder.host}`;
        throw new VlmqError('ERR_VLMQ_LOCKED', `${what} is in use by process ${holder.pid}${where} since ${holder.since} (lock file ${path}); wait for that run to end, or stop it${holder.host === owner.host ? '' : `; if it is gone, remove ${path}`}`);
      }
      // An unreadable lock may be one another process is writing this very moment.
      if (holder === null && (await ageSeconds(path)) < FRESH_SECONDS) break;
      if (!(await removeStale(path, holder))) continue;
      onTakeover?.(`${what}: took over the lock of ${holder === null ? 'an unreadable lock file' : `process ${holder.pid}, which is no longer running`} (${path})`);
    }
    throw new VlmqError('ERR_VLMQ_LOCKED', `${what}: another process took the lock (${path}) at the same moment; try again`);
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    held.delete(this);
    if ((await readOwner(this.path))?.pid === this.owner.pid) await rm(this.path, { force: true });
  }

  /** At process exit: synchronous, and only our own lock. */
  #releaseSync(): void {
    if (this.#released) return;
    this.#released = true;
    try {
      const holder = JSON.parse(readFileSync(this.path, 'utf8')) as LockOwner;
      if (holder.pid === this.owner.pid) unlinkSync(this.path);
    } catch {
      // gone already, or not ours: nothing to release
    }
  }
}

/** How young an unreadable lock file must be to count as being written rather than abandoned. */
const FRESH_SECONDS = 10;

async function ageSeconds(path: string): Promise<number> {
  const info = await stat(path).catch(() => null);
  return info === null ? Infinity : (Date.now() - info.mtimeMs) / 1000;
}

async function createExclusive(path: string, content: string): Promise<boolean> {
  try {
    const handle = await open(path, 'wx');
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fsError(path, error, 'cannot create the lock file');
  }
}

/** The lock's owner; null when the file is unreadable or not a lock (a half-written one, say). */
async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    const value = JSON.parse(await readFile(path, 'utf8')) as Partial<LockOwner>;
    if (Number.isSafeInteger(value.pid) && typeof value.host === 'string') return { pid: value.pid!, host: value.host, since: String(value.since) };
  } catch {
    // fall through: not a lock we can read
  }
  return null;
}

/**
 * Removes a stale lock unless another process replaced it meanwhile: the file is first moved
 * aside (atomically), and moved back if what was moved is no longer the stale lock we read.
 */
async function removeStale(path: string, stale: LockOwner | null): Promise<boolean> {
  const aside = `${path}.stale-${process.pid}`;
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw fsError(path, error, 'cannot take over the stale lock file');
  }
  const moved = await readOwner(aside);
  if (stale !== null && moved?.pid !== stale.pid) {
    await rename(aside, path).catch(() => undefined);
    return false;
  }
  await rm(aside, { force: true });
  return true;
}
