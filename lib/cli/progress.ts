// Progress of one task on stderr, in the manner of node-llama-cpp's withProgressLog:
// - on an interactive terminal, one line redrawn in place with a bar, the percentage and an ETA;
// - otherwise (a pipe, a log file, CI set), plain lines at most every 10 % or every 2 s;
// - with --json, `progress` events on stdout instead.
import { performance } from 'node:perf_hooks';
import { type Output, formatSeconds } from './output.js';

export interface ProgressOptions {
  /** What is counted ("columns", "tokens"). */
  unit?: string;
  /** Clock in milliseconds; tests pass a fake one. */
  now?: () => number;
}

/** Plain lines: a new one once this many percent more is done ... */
const PLAIN_STEP_PERCENT = 10;
/** ... or this many milliseconds have passed since the last one. */
const PLAIN_INTERVAL_MS = 2000;
/** A terminal line is redrawn at most this often. */
const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH = 20;

export class Progress {
  readonly task: string;
  readonly #out: Output;
  readonly #unit: string;
  readonly #now: () => number;
  readonly #start: number;
  #done = 0;
  #total = 0;
  #lastShownAt: number;
  #lastShownPercent = -1;
  #finished = false;
  /** The first update: where the rate for the ETA is measured from. */
  #first: { at: number; done: number } | null = null;

  constructor(out: Output, task: string, options: ProgressOptions = {}) {
    this.#out = out;
    this.task = task;
    this.#unit = options.unit ?? '';
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.#lastShownAt = this.#start;
  }

  /** Seconds since the task started. */
  get elapsed(): number {
    return (this.#now() - this.#start) / 1000;
  }

  /** `done` of `total` units are complete. Cheap to call often; output is throttled. */
  update(done: number, total: number): void {
    if (this.#finished || !(total > 0)) return;
    this.#done = Math.min(Math.max(done, 0), total);
    this.#total = total;
    const now = this.#now();
    this.#first ??= { at: now, done: this.#done };
    const percent = Math.floor((100 * this.#done) / total);
    if (this.#out.json) {
      // Every whole percent; the complete state comes from finish().
      if (percent === this.#lastShownPercent || this.#done >= total) return;
      this.#emitEvent(false);
    } else if (this.#out.interactive) {
      if (now - this.#lastShownAt < REDRAW_INTERVAL_MS && this.#done < total) return;
      this.#out.status(this.#line(true));
    } else {
      const nextStep = (Math.floor(this.#lastShownPercent / PLAIN_STEP_PERCENT) + 1) * PLAIN_STEP_PERCENT;
      if (percent < Math.max(nextStep, PLAIN_STEP_PERCENT) && now - this.#lastShownAt < PLAIN_INTERVAL_MS) return;
      if (this.#done >= total) return; // the final line comes from finish()
      this.#out.log(this.#line(false));
    }
    this.#lastShownAt = now;
    this.#lastShownPercent = percent;
  }

  /**
   * The task is complete: one final line (or event) with the time it took. `total` names the
   * amount of work when no update may have arrived (native progress calls can be dropped, and
   * can arrive after the work's promise has settled; later updates are ignored).
   */
  finish(total?: number): void {
    if (this.#finished) return;
    this.#finished = true;
    if (total !== undefined && total > 0) this.#total = total;
    if (this.#total > 0) this.#done = this.#total;
    if (this.#out.json) {
      this.#emitEvent(true);
      return;
    }
    const count = this.#total > 0 ? ` (${this.#total} ${this.#unit})`.replace(' )', ')') : '';
    this.#out.endStatus(`${this.task}: done${count} in ${formatSeconds(this.elapsed)}`);
  }

  /**
   * Seconds left at the rate measured since the first update (work before it, such as a
   * factorisation ahead of a sweep, would otherwise inflate the estimate); from the start while
   * only one update has arrived.
   */
  #eta(): number | null {
    const now = this.#now();
    if (this.#first !== null && this.#done > this.#first.done && now > this.#first.at) {
      return ((now - this.#first.at) / 1000 / (this.#done - this.#first.done)) * (this.#total - this.#done);
    }
    const elapsed = this.elapsed;
    if (this.#done <= 0 || elapsed <= 0) return null;
    return (elapsed * (this.#total - this.#done)) / this.#done;
  }

  #line(withBar: boolean): string {
    const fraction = this.#done / this.#total;
    const percent = `${Math.floor(100 * fraction)}%`.padStart(4);
    const eta = this.#eta();
    const counts = `${this.#done}/${this.#total}${this.#unit ? ` ${this.#unit}` : ''}`;
    if (withBar) {
      // Terminal: compact, it has to fit one line.
      const bar = `[${'#'.repeat(Math.round(fraction * BAR_WIDTH)).padEnd(BAR_WIDTH, '.')}]`;
      return `${this.task} ${bar} ${percent} ${counts}${eta === null ? '' : `  ETA ${formatSeconds(eta)}`}`;
    }
    return `${this.task}: ${percent} (${counts}), ${formatSeconds(this.elapsed)} elapsed${eta === null ? '' : `, ETA ${formatSeconds(eta)}`}`;
  }

  #emitEvent(finished: boolean): void {
    const eta = this.#eta();
    this.#out.event('progress', {
      task: this.task,
      done: this.#done,
      total: this.#total,
      unit: this.#unit || undefined,
      percent: this.#total > 0 ? Math.floor((100 * this.#done) / this.#total) : 100,
      elapsedSeconds: round3(this.elapsed),
      etaSeconds: finished ? 0 : eta === null ? null : round3(eta),
      finished,
    });
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
