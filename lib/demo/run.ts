// The whole system on an embedded default, for `vlmq demo`: a tiny Qwen2-VL checkpoint (seeded
// weights, the real tensor names and config fields, a real tokenizer.json), the built-in
// calibration set (rendered document, chart and table images with texts about them), calibration
// bundles made by vlmq's own preprocessing and vision tower, RTN, GPTQ, GPTAQ and VLMQ at 3 bits,
// their errors against full precision after every layer and of the logits on held-out samples
// (text and image tokens apart), the next-token agreement, and the VLMQ result exported as a GPTQ checkpoint and verified.
import { join } from 'node:path';
import { CalibrationBundle, type BundleSample } from '../data/bundle.js';
import type { ExportReport } from '../export/export.js';
import { verifyCheckpoint, type VerifyReport } from '../export/verify.js';
import { loadModel } from '../models/model.js';
import { buildCalibrationBundle, type CalibrationReport } from '../pipeline/calibration.js';
import { type LayerErrors, type OutputErrors, modelErrors } from '../pipeline/evaluate.js';
import { type ModelMethod, type QuantizeEvent, quantize } from '../pipeline/quantize.js';
import { builtinRecords } from './builtin-set.js';
import { writeTinyCheckpoint } from './tiny-checkpoint.js';
import type { Device } from '../native/devices.js';

export const DEMO = {
  model: { architecture: 'qwen2_vl', layers: 4, hidden: 128, intermediate: 384, heads: 4, kvHeads: 2, seed: 2026, vision: { depth: 2, width: 64, heads: 4 } },
  calibration: 32,
  heldOut: 8,
  bits: 3,
} as const;

export const DEMO_METHODS: readonly ModelMethod[] = ['rtn', 'gptq', 'gptaq', 'vlmq'];

export type DemoEvent =
  | { type: 'step'; step: string }
  | { type: 'calibration'; set: 'calibration' | 'held-out'; report: CalibrationReport }
  | { type: 'pipeline'; method: ModelMethod; event: QuantizeEvent }
  | { type: 'method'; method: ModelMethod; seconds: number; errors: LayerErrors[]; output: OutputErrors };

export interface DemoResult {
  dir: string;
  calibration: CalibrationReport;
  heldOut: CalibrationReport;
  /** Per method, the errors after every layer on the held-out samples. */
  errors: Record<ModelMethod, LayerErrors[]>;
  /** Per method, the errors of the logits and the next-token agreement on the held-out samples. */
  output: Record<ModelMethod, OutputErrors>;
  seconds: Record<ModelMethod, number>;
  export: ExportReport;
  verify: VerifyReport;
}

/** Runs the demo in `dir` (which must be empty or absent); everything it makes stays there. */
export async function runDemo(dir: string, options: { signal?: AbortSignal; onEvent?: (e: DemoEvent) => void; device?: Device } = {}): Promise<DemoResult> {
  const emit = (e: DemoEvent) => options.onEvent?.(e);
  const { signal, device } = options;
  emit({ type: 'step', step: 'writing a tiny Qwen2-VL checkpoint and the built-in calibration set' });
  await writeTinyCheckpoint(join(dir, 'model'), DEMO.model);
  const records = await builtinRecords(join(dir, 'builtin-set'), { samples: DEMO.calibration + DEMO.heldOut, seed: 0 });
  const model = await loadModel(join(dir, 'model'));
  try {
    emit({ type: 'step', step: 'preprocessing images, running the vision tower, tokenizing' });
    const calibration = await buildCalibrationBundle(model, records.slice(0, DEMO.calibration), join(dir, 'calibration.safetensors'), { signal, device });
    emit({ type: 'calibration', set: 'calibration', report: calibration });
    const heldOut = await buildCalibrationBundle(model, records.slice(DEMO.calibration), join(dir, 'held-out.safetensors'), { signal, device });
    emit({ type: 'calibration', set: 'held-out', report: heldOut });
    const bundle = await CalibrationBundle.open(calibration.path);
    const heldOutSamples = await readAll(heldOut.path);
    const errors = {} as Record<ModelMethod, LayerErrors[]>;
    const output = {} as Record<ModelMethod, OutputErrors>;
    const seconds = {} as Record<ModelMethod, number>;
    let exported: ExportReport | null = null;
    try {
      for (const method of DEMO_METHODS) {
        signal?.throwIfAborted();
        emit({ type: 'step', step: `${method}: quantizing` });
        const started = performance.now();
        const run = await quantize(model, method === 'rtn' ? null : bundle, {
          method, bits: DEMO.bits, actOrder: method !== 'rtn', workDir: join(dir, `work-${method}`), signal, device,
          onEvent: (event) => emit({ type: 'pipeline', method, event }),
        });
        seconds[method] = (performance.now() - started) / 1000;
        ({ layers: errors[method], output: output[method] } = await modelErrors(model, run, heldOutSamples, { device }));
        emit({ type: 'method', method, seconds: seconds[method], errors: errors[method], output: output[method] });
        if (method === 'vlmq') {
          exported = await run.save(join(dir, 'vlmq-gptq'), { format: 'gptq_v2', signal });
          await run.save(join(dir, 'vlmq-fake-quant'), { format: 'fake-quant', fakeQuantDtype: 'F32', signal });
        }
        await run.discard();
      }
    } finally {
      await bundle.close();
    }
    emit({ type: 'step', step: 'verifying the exported GPTQ checkpoint' });
    const verify = await verifyCheckpoint(join(dir, 'vlmq-gptq'), { against: join(dir, 'vlmq-fake-quant') });
    return { dir, calibration, heldOut, errors, output, seconds, export: exported!, verify };
  } finally {
    await model.close();
  }
}

async function readAll(path: string): Promise<BundleSample[]> {
  const bundle = await CalibrationBundle.open(path);
  try {
    const samples: BundleSample[] = [];
    for (let i = 0; i < bundle.samples; i++) {
      const s = await bundle.read(i);
      samples.push({ embeddings: { dtype: 'F32', shape: [s.modality.length, bundle.hidden], data: s.embeddings }, positions: s.positions, modality: s.modality });
    }
    return samples;
  } finally {
    await bundle.close();
  }
}

