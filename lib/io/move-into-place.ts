// Files and directories written whole under a temporary name beside their destination and renamed
// into place, so that nothing half-written is ever where the finished one belongs. A process
// killed mid-write (SIGKILL, power loss) leaves its temporary behind; the next write to the same
// destination removes such leftovers, and says so, when they are certainly vlmq's: named by this
// scheme, written by a process that is no longer running, and (for a directory) still holding the
// mark vlmq puts in every directory it assembles.
import { randomBytes } from 'node:crypto';
import { lstat, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isProcessAlive } from './lock.js';

/** The file inside a directory being assembled that marks it as vlmq's; removed just before the rename. */
export const PARTIAL_MARK = '.vlmq-partial';

/** `${destination}.tmp-<pid>-<random>`: unique, and it says which process wrote it. */
export function temporarySibling(destination: string): string {
  return `${destination}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Marks a new temporary directory as vlmq's own (see removeStaleSiblings). */
export async function markPartial(temporary: string): Promise<void> {
  await writeFile(join(temporary, PARTIAL_MARK), `vlmq: a directory being written by process ${process.pid}\n`);
}

/** The temporary directory becomes the destination; an old one is removed only afterwards. */
export async function moveIntoPlace(temporary: string, destination: string): Promise<void> {
  await rm(join(temporary, PARTIAL_MARK), { force: true });
  const existing = await lstat(destination).catch(() => null);
  if (!existing) {
    await rename(temporary, destination);
    return;
  }
  const old = `${destination}.old-${process.pid}-${randomBytes(4).toString('hex')}`;
  await rename(destination, old);
  try {
    await rename(temporary, destination);
  } catch (error) {
    await rename(old, destination);
    throw error;
  }
  await rm(old, { recursive: true, force: true });
}

export interface StaleSibling {
  path: string;
  pid: number;
}

const SIBLING = /^\.(tmp|old)-(\d+)-[0-9a-f]+$/;

/**
 * Removes what dead vlmq processes left beside `destination`: temporary files, temporary
 * directories that still hold the partial mark, and the replaced directory of an overwrite that
 * was killed after the new one was in place. Returns what it removed.
 */
export async function removeStaleSiblings(destination: string): Promise<StaleSibling[]> {
  const parent = dirname(destination);
  const name = basename(destination);
  const entries = await readdir(parent).catch(() => [] as string[]);
  const removed: StaleSibling[] = [];
  for (const entry of entries) {
    if (!entry.startsWith(name)) continue;
    const match = SIBLING.exec(entry.slice(name.length));
    if (!match) continue;
    const pid = Number(match[2]);
    if (pid === process.pid || isProcessAlive(pid)) continue;
    const path = join(parent, entry);
    if (await isStale(path, match[1] as 'tmp' | 'old', destination)) {
      await rm(path, { recursive: true, force: true });
      removed.push({ path, pid });
    }
  }
  return removed;
}

async function isStale(path: string, kind: 'tmp' | 'old', destination: string): Promise<boolean> {
  const info = await lstat(path).catch(() => null);
  if (info === null) return false;
  if (kind === 'old') return info.isDirectory() && (await lstat(destination).catch(() => null)) !== null;
  if (info.isFile()) return true;
  return info.isDirectory() && (await lstat(join(path, PARTIAL_MARK)).catch(() => null))?.isFile() === true;
}
