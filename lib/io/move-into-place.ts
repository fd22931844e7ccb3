// Directories written whole under a temporary name and renamed into place, so that nothing
// half-written is ever where the finished directory belongs.
import { randomBytes } from 'node:crypto';
import { rename, rm, stat } from 'node:fs/promises';

/** The temporary directory becomes the destination; an old one is removed only afterwards. */
export async function moveIntoPlace(temporary: string, destination: string): Promise<void> {
  const existing = await stat(destination).catch(() => null);
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
