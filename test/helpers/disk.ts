// What is on disk under a folder, to assert that a refused or failed command changed nothing
// there: every entry with its kind, size and a hash of its bytes.
import { createHash } from 'node:crypto';
import { lstat, readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';

/** Relative path → "dir", "file <size> <sha256>" or "other", for every entry under `root`, sorted. */
export async function diskListing(root: string): Promise<Record<string, string>> {
  const listing: Record<string, string> = {};
  const visit = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const path = join(dir, name);
      const info = await lstat(path);
      const key = relative(root, path);
      if (info.isDirectory()) {
        listing[key] = 'dir';
        await visit(path);
      } else if (info.isFile()) {
        listing[key] = `file ${info.size} ${createHash('sha256').update(await readFile(path)).digest('hex')}`;
      } else {
        listing[key] = 'other';
      }
    }
  };
  await visit(root);
  return listing;
}
