// What vlmq reads and where it writes, checked before any byte moves: inputs are regular files (or
// directories where one is expected), outputs are regular files or absent. A FIFO opened for
// reading blocks until a writer comes, and a rename onto /dev/null replaces the device node, so
// special files are refused by kind, naming the path. Every filesystem error becomes a VlmqError
// that says which path and what went wrong in words (no bare EISDIR or ELOOP).
import { constants, type Stats } from 'node:fs';
import { type FileHandle, open, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { VlmqError, fileError } from '../errors.js';

/** "a directory", "a FIFO", "a character device": what a path is, for messages. */
export function describeKind(info: Stats): string {
  if (info.isFile()) return 'a regular file';
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSocket()) return 'a socket';
  if (info.isSymbolicLink()) return 'a symbolic link';
  return 'a special file';
}

/** A filesystem error in words: "no such file", "is a directory", "permission denied", "the disk is full". */
export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT': return 'no such file or directory';
    case 'EISDIR': return 'is a directory, not a file';
    case 'ENOTDIR': return 'a part of the path is not a directory';
    case 'ELOOP': return 'too many levels of symbolic links (a link loop?)';
    case 'EACCES': case 'EPERM': return 'permission denied';
    case 'ENOSPC': return 'the disk is full (no space left on device)';
    case 'EDQUOT': return 'the disk quota is exceeded';
    case 'EROFS': return 'the filesystem is read-only';
    case 'EEXIST': return 'already exists';
    case 'ENAMETOOLONG': return 'the name is too long';
    case 'EMFILE': case 'ENFILE': return 'too many open files';
    case 'EIO': return 'an input/output error (a failing disk or a network filesystem that went away?)';
    default: return (error as Error | undefined)?.message ?? String(error);
  }
}

/** A filesystem error as a VlmqError naming the path; a VlmqError passes through unchanged. */
export function fsError(path: string, error: unknown, doing?: string): VlmqError {
  if (error instanceof VlmqError) return error;
  return fileError(path, `${doing ? `${doing}: ` : ''}${describeFsError(error)}`, { cause: error });
}

/**
 * A system error met while writing `path` (ENOSPC, EACCES, EIO…) as a VlmqError that names the
 * file and says what happened in words; any other error (an abort, a bad value) is returned as it is.
 */
export function writeError(path: string, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (error instanceof VlmqError || typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return error;
  return new VlmqError('ERR_VLMQ_WRITE_FAILED', `${path}: cannot write: ${describeFsError(error)}`, { cause: error });
}

// O_NONBLOCK makes open() return at once on a FIFO instead of waiting for a writer; on a regular
// file it changes nothing. Windows has no such flag (and no FIFOs in the filesystem).
const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/**
 * Opens `path` for reading, refusing anything but a regular file by its kind (directory, FIFO,
 * device, socket) without blocking on it. `what` names the file in messages ("image", "safetensors file").
 */
export async function openRegularFile(path: string, what = 'file'): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(path, READ_FLAGS);
  } catch (error) {
    throw fsError(path, error, (error as NodeJS.ErrnoException).code === 'EISDIR' ? undefined : `cannot open this ${what}`);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw fileError(path, `is ${describeKind(info)}, not a regular ${what}`);
    return handle;
  } catch (error) {
    await handle.close().catch(() => undefined);
    throw fsError(path, error);
  }
}

/** The whole of a regular file, as bytes or as text; errors as openRegularFile's. */
export async function readRegularFile(path: string, what?: string): Promise<Buffer>;
export async function readRegularFile(path: string, what: string | undefined, encoding: 'utf8'): Promise<string>;
export async function readRegularFile(path: string, what?: string, encoding?: 'utf8'): Promise<Buffer | string> {
  const handle = await openRegularFile(path, what);
  try {
    return encoding ? await handle.readFile({ encoding }) : await handle.readFile();
  } catch (error) {
    throw fsError(path, error, `cannot read this ${what ?? 'file'}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** A regular file's size, or null when the path does not exist; any other kind is an error. */
export async function regularFileSize(path: string, what = 'file'): Promise<number | null> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw fsError(path, error);
  });
  if (info === null) return null;
  if (!info.isFile()) throw fileError(path, `is ${describeKind(info)}, not a regular ${what}`);
  return info.size;
}

/**
 * Where a file will be written (by rename, so it replaces what is there): absent, or a regular
 * file. A directory, device, FIFO or socket is refused before anything is written.
 */
export async function checkFileDestination(path: string, what = 'output file'): Promise<void> {
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw fsError(path, error);
  });
  if (info !== null && !info.isFile()) throw new VlmqError('ERR_VLMQ_BAD_OUTPUT', `${path}: is ${describeKind(info)}; the ${what} must be a regular file or not exist yet`);
}

/** The real path of `path`, or, when it does not exist yet, of its nearest existing ancestor joined with the rest. */
async function realPathOf(path: string): Promise<string> {
  const absolute = resolve(path);
  const real = await realpath(absolute).catch(() => null);
  if (real !== null) return real;
  const parent = dirname(absolute);
  return parent === absolute ? absolute : join(await realPathOf(parent), basename(absolute));
}

/**
 * How directory `a` lies relative to `b`, by real paths (so a symbolic link cannot hide that two
 * names are one place): the same, inside it, containing it, or apart.
 */
export async function placement(a: string, b: string): Promise<'same' | 'inside' | 'contains' | 'apart'> {
  const [x, y] = await Promise.all([realPathOf(a), realPathOf(b)]);
  if (x === y) return 'same';
  if (x.startsWith(y.endsWith(sep) ? y : `${y}${sep}`)) return 'inside';
  if (y.startsWith(x.endsWith(sep) ? x : `${x}${sep}`)) return 'contains';
  return 'apart';
}
