// The calibrated run's events for people (stderr: one line per module with an ETA, one per layer
// with its phases) or for programs (--json: the pipeline's events as JSON lines, each with
// `etaSeconds`). The ETA is the mean time per module so far times the modules left; replayed
// layers of a resumed run are not counted, they take a fraction of a quantized layer's time.
import { performance } from 'node:perf_hooks';
import { MODULE_GROUPS } from '../models/decoder.js';
import type { ModalityMeans, Phase, PipelineEvent } from '../pipeline/calibrated.js';
import { type Output, formatSeconds } from './output.js';

const MODULES_PER_LAYER = MODULE_GROUPS.flat().length;

export class RunLog {
  #modulesLeft = 0;
  #modulesDone = 0;
  #clock = 0;
  #layers = 0;

  constructor(private readonly out: Output, private readonly now: () => number = () => performance.now()) {}

  /** Seconds left, or null before the first module has finished. */
  get eta(): number | null {
    if (this.#modulesDone === 0) return null;
    return ((this.now() - this.#clock) / 1000 / this.#modulesDone) * this.#modulesLeft;
  }

  handle(event: PipelineEvent): void {
    if (event.type === 'start') {
      this.#layers = event.layers;
      this.#modulesLeft = (event.layers - event.resumedLayers) * MODULES_PER_LAYER;
    }
    if (event.type === 'module') {
      this.#modulesDone++;
      this.#modulesLeft--;
    }
    if (event.type === 'start' || event.type === 'replay') this.#clock = this.now();
    if (this.out.json) {
      const { type, ...fields } = event;
      const eta = this.eta;
      this.out.event(type, { ...fields, etaSeconds: eta === null ? null : Math.round(eta * 10) / 10 });
      return;
    }
    const line = this.#line(event);
    if (line) this.out.log(line);
  }

  #line(e: PipelineEvent): string | null {
    const at = (layer: number) => `layer ${String(layer).padStart(String(this.#layers - 1).length)}/${this.#layers}`;
    switch (e.type) {
      case 'start':
        return [
          `calibration: ${e.samples} samples, ${e.tokens} tokens; ${e.method === 'vlmq' ? `vlmq on ${e.base}` : e.method}, ${e.layers} layers`,
          e.resumedLayers > 0 ? `; resuming after ${e.resumedLayers} finished layer${e.resumedLayers === 1 ? '' : 's'}` : '',
          e.spilledSamples > 0 ? `; ${e.spilledSamples} sample streams over the --memory budget are kept on disk` : '',
        ].join('');
      case 'replay':
        return `${at(e.layer)} replayed (finished earlier) in ${formatSeconds(e.seconds)}`;
      case 'importance':
        return `${at(e.layer)} importance: block loss ${e.loss.toExponential(3)}${e.fallback ? `, factors from the ${e.fallback} fallback` : ''}${describeMeans(e.meanByModality)} (${formatSeconds(e.seconds)})`;
      case 'module': {
        const eta = this.eta;
        const notes = [e.fallback ? 'RTN fallback' : '', e.deadColumns > 0 ? `${e.deadColumns} dead columns` : ''].filter(Boolean).join(', ');
        return `${at(e.layer)} ${e.module.padEnd(9)} loss ${e.loss.toExponential(3)}  damp ${e.percdamp}  ${formatSeconds(e.seconds)}${notes ? `  (${notes})` : ''}${eta === null ? '' : `  ETA ${formatSeconds(eta)}`}`;
      }
      case 'layer':
        return `${at(e.layer)} done in ${formatSeconds(e.seconds)}: ${describePhases(e.phases, e.seconds)}`;
      case 'done':
        return `calibration: done in ${formatSeconds(e.seconds)}`;
    }
  }
}

/** "; mean factor text/image q 1.62/0.93, k …" when the set has more than one modality. */
function describeMeans(means: ModalityMeans): string {
  const kinds = Object.keys(means) as (keyof ModalityMeans)[];
  if (kinds.length < 2) return '';
  const projections = ['q', 'k', 'v', 'o'] as const;
  return `; mean factor ${kinds.join('/')} ${projections.map((p) => `${p} ${kinds.map((k) => means[k]![p].toFixed(2)).join('/')}`).join(', ')}`;
}

/** "forward 40%, importance 10%, …, other 3%" of a layer's time (other: loading weights, storing the layer). */
export function describePhases(phases: Record<Phase, number>, seconds: number): string {
  const share = (s: number) => `${seconds > 0 ? Math.round((100 * s) / seconds) : 0}%`;
  const other = Math.max(0, seconds - Object.values(phases).reduce((a, b) => a + b, 0));
  return [...Object.entries(phases).map(([phase, s]) => `${phase} ${share(s)}`), `other ${share(other)}`].join(', ');
}
