// Paths that are not regular files, put where a reader expects one: a FIFO (opening it for reading
// blocks until a writer comes), a directory, a symbolic-link loop, a dangling link, a character
// device, nothing at all. A reader must refuse each by kind, naming the path, without waiting.
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';

export const SPECIAL_KINDS = ['fifo', 'directory', 'link-loop', 'dangling-link', 'device', 'missing'] as const;
export type SpecialKind = (typeof SPECIAL_KINDS)[number];

export const specialKind: fc.Arbitrary<SpecialKind> = fc.constantFrom(...SPECIAL_KINDS);

/** Puts a special file of `kind` at `path` (which must not exist yet). */
export async function makeSpecial(path: string, kind: SpecialKind): Promise<void> {
  switch (kind) {
    case 'fifo':
      execFileSync('mkfifo', [path]);
      return;
    case 'directory':
      await mkdir(path);
      return;
    case 'link-loop':
      await symlink(path, path);
      return;
    case 'dangling-link':
      await symlink(`${path}.nowhere`, path);
      return;
    case 'device':
      await symlink('/dev/zero', path); // an endless character device: a reader that accepted it would never finish
      return;
    case 'missing':
      return;
  }
}
