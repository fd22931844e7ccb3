// The work directory of a calibrated run, under the rule that vlmq deletes only what it created.
// It must be new, empty, or one vlmq made for a run (its marker file says so); it may not be the
// model directory or the output, nor contain or lie inside either. A lock file keeps a second run
// out while one is using it. When the run is discarded, vlmq removes the files it names (the
// marker, state, layers, bundle, spill files and their temporaries) and then the directory itself
// only if vlmq made it and nothing else is left in it; other files are never touched.
import { lstat, mkdir, readFile, readdir, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { VlmqError, invalidParameterError } from '../errors.js';
import { describeKind, fsError, placement } from '../io/files.js';
import { DirectoryLock } from '../io/lock.js';

const MARKER = 'vlmq-work.json';
const LOCK = 'vlmq.lock';
/** The state file of the layer store (store.ts), which also marks directories of older vlmq versions. */
export const STATE_FILE = 'state.json';
export const BUNDLE_FILE = 'calibration.safetensors';
export const SPILL_FILES = { full: 'full.f32', quantized: 'quantized.f32' } as const;
export const layerFileName = (layer: number) => `layer-${String(layer).padStart(5, '0')}.safetensors`;

/** Every name vlmq writes into a work directory, with the temporaries of its atomic writes. */
const OWN_FILE = /^(?:vlmq-work\.json|state\.json|calibration\.safetensors|full\.f32|quantized\.f32|layer-\d{5}\.safetensors)(?:\.tmp-\d+-[0-9a-f]+)?$/;

interface Marker {
  vlmq: 1;
  /** Whether vlmq created the directory (then it removes it when the run is discarded). */
  madeDirectory: boolean;
}

export interface WorkDirPlacement {
  /** The model directory, which the work directory must stay clear of. */
  model: string;
  /** The output directory, when known. */
  out?: string;
}

export class WorkDir {
  private constructor(readonly path: string, private readonly lock: DirectoryLock) {}

  /**
   * Checks, creates if needed, and locks the work directory `path`. `onNotice` hears of a stale
   * lock that was taken over.
   */
  static async open(path: string, where: WorkDirPlacement, onNotice?: (message: string) => void): Promise<WorkDir> {
    const existing = await checkWorkDir(path, where);
    const made = existing === null && (await makeDirectory(path));
    const lock = await DirectoryLock.acquire(join(path, LOCK), `work directory ${path}`, onNotice);
    try {
      if ((await readMarker(path)) === null) await writeMarker(path, { vlmq: 1, madeDirectory: made });
      return new WorkDir(path, lock);
    } catch (error) {
      await lock.release();
      throw fsError(path, error);
    }
  }

  /** Releases the lock and keeps every file (the run can be resumed or exported later). */
  async close(): Promise<void> {
    await this.lock.release();
  }

  /**
   * After a run that failed: keeps what can be resumed, but a directory that holds nothing of the
   * run yet (only the marker) is discarded, so a refused input leaves no empty folder behind.
   */
  async closeAfterFailure(): Promise<void> {
    const entries = await readdir(this.path).catch(() => [] as string[]);
    if (entries.every((name) => name === MARKER || name === LOCK)) await this.discard();
    else await this.close();
  }

  /** Removes what vlmq wrote here, then the directory if vlmq made it and it is left empty. */
  async discard(): Promise<void> {
    const marker = await readMarker(this.path);
    for (const name of await readdir(this.path)) {
      if (name === MARKER || !OWN_FILE.test(name)) continue;
      const path = join(this.path, name);
      if ((await lstat(path)).isFile()) await rm(path);
    }
    await rm(join(this.path, MARKER), { force: true });
    await this.lock.release();
    if (marker?.madeDirectory) await rmdir(this.path).catch(() => undefined);
  }
}

/**
 * What vlmq requires of a work directory before any work, without touching it: null when it does
 * not exist yet, else its entries. Errors (ERR_VLMQ_WORK_DIR) say which rule it breaks.
 */
export async function checkWorkDir(path: string, where: WorkDirPlacement): Promise<string[] | null> {
  if (typeof path !== 'string' || path === '') throw invalidParameterError('workDir', 'a directory path', path);
  for (const [role, other] of [['model directory', where.model], ['output directory', where.out]] as const) {
    if (other === undefined) continue;
    const relation = await placement(path, other);
    if (relation !== 'apart') {
      const how = relation === 'same' ? 'is' : relation === 'inside' ? 'lies inside' : 'contains';
      throw workDirError(path, `${how} the ${role} ${other}; a work directory must be a folder of its own, apart from the model and the output`);
    }
  }
  const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw fsError(path, error);
  });
  if (info === null) return null;
  if (!info.isDirectory()) throw workDirError(path, `is ${describeKind(info)}, not a directory`);
  const entries = await readdir(path);
  if (entries.length > 0 && !(await isWorkDir(path))) {
    const shown = entries.slice(0, 5).join(', ');
    throw workDirError(path, `is not empty and is not a vlmq work directory (it holds ${shown}${entries.length > 5 ? `, … ${entries.length} entries in all` : ''}); give an empty or new directory, which vlmq may clean up after the run`);
  }
  return entries;
}

function workDirError(path: string, message: string): VlmqError {
  return new VlmqError('ERR_VLMQ_WORK_DIR', `work directory ${path}: ${message}`);
}

/** A directory vlmq made for a run: its marker, or the state file of a vlmq version before markers. */
async function isWorkDir(path: string): Promise<boolean> {
  if ((await readMarker(path)) !== null) return true;
  const state = await readFile(join(path, STATE_FILE), 'utf8').then((text) => JSON.parse(text) as unknown, () => null);
  return typeof state === 'object' && state !== null && (state as { version?: unknown }).version === 1 && typeof (state as { fingerprint?: unknown }).fingerprint === 'string';
}

/** Creates the directory (not its parents); false when another process created it first. */
async function makeDirectory(path: string): Promise<boolean> {
  try {
    await mkdir(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'ENOENT') throw workDirError(path, `its parent directory ${dirname(path)} does not exist (create it first)`);
    throw fsError(path, error, 'cannot create the work directory');
  }
}

async function readMarker(dir: string): Promise<Marker | null> {
  try {
    const value = JSON.parse(await readFile(join(dir, MARKER), 'utf8')) as Partial<Marker>;
    return value.vlmq === 1 ? { vlmq: 1, madeDirectory: value.madeDirectory === true } : null;
  } catch {
    return null;
  }
}

async function writeMarker(dir: string, marker: Marker): Promise<void> {
  await writeFile(join(dir, MARKER), `${JSON.stringify(marker)}\n`);
}
