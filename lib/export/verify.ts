// `vlmq verify`: a GPTQ checkpoint checked on its own terms (configs, the tensor set the
// architecture implies, every packed linear unpacked by an implementation independent of the
// packer) and, optionally, against the fake-quant export of the same run, which must be identical.
import { join } from 'node:path';
import type { UnknownTensorPolicy } from '../models/checks.js';
import { Model } from '../models/model.js';
import { layerLinears } from '../models/decoder.js';
import { expectedTensors, parseModelConfig } from '../models/registry.js';
import type { LinearSpec } from '../models/types.js';
import { sameJson } from '../json.js';
import { toFloat32 } from '../tensor.js';
import { CONFIG_FILE, Checkpoint, readJsonObject } from '../io/checkpoint.js';
import { encodeFloats } from './export.js';
import { type GptqSettings, gptqSettings } from './gptq-config.js';
import { gptqShapes } from './gptq-pack.js';
import { type GptqUnpackedLinear, unpackGptqLinear } from './gptq-unpack.js';

export interface VerifyReport {
  dir: string;
  architecture: string;
  layout: string;
  settings: Omit<GptqSettings, 'raw'> | null;
  linears: number;
  tensors: number;
  /** The problems found (the first MAX_PROBLEMS); empty means the checkpoint verified. */
  problems: string[];
  /** How many problems were found in all. */
  problemCount: number;
  /** With --against: tensors compared and how many differed. */
  comparison: { against: string; tensors: number; mismatched: number } | null;
  /** Tensors the architecture does not account for, accepted with unknownTensors: 'keep' (else each is a problem). */
  unknownTensors: string[];
}

export interface VerifyOptions {
  /** The fake-quant export of the same run to compare with. */
  against?: string;
  /** 'keep': tensors the architecture does not account for were carried over on purpose; list them instead of reporting them. */
  unknownTensors?: UnknownTensorPolicy;
}

const MAX_PROBLEMS = 50;

export async function verifyCheckpoint(dir: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  const checkpoint = await Checkpoint.open(dir);
  const problems: string[] = [];
  let problemCount = 0;
  const report = (problem: string) => {
    problemCount++;
    if (problems.length < MAX_PROBLEMS) problems.push(problem);
  };
  try {
    const configFile = join(dir, CONFIG_FILE);
    const { architecture, config } = parseModelConfig(checkpoint.config, configFile);
    const settings = gptqSettings(checkpoint.config, configFile);
    const layout = architecture.layoutOf(new Set(checkpoint.tensors.keys()));
    const result: VerifyReport = {
      dir, architecture: architecture.displayName, layout, settings: settings && withoutRaw(settings),
      linears: 0, tensors: checkpoint.tensors.size, problems, problemCount: 0, comparison: null, unknownTensors: [],
    };
    const finish = () => Object.assign(result, { problemCount });
    if (!settings) {
      report(`${configFile}: no quantization_config — not a GPTQ checkpoint`);
      return finish();
    }
    await checkQuantizeConfig(dir, settings, report);
    const prefixes = architecture.languagePrefixes(layout);
    const linears = Array.from({ length: config.text.numLayers }, (_, l) => layerLinears(config.text, prefixes, l)).flat();
    result.linears = linears.length;
    const keep = options.unknownTensors === 'keep';
    result.unknownTensors = checkTensorSet(checkpoint, expectedTensors(architecture, config, layout), linears, settings, report, keep);
    const fake = options.against ? await Model.load(options.against, { unknownTensors: options.unknownTensors ?? 'error' }) : null;
    try {
      let compared = 0, mismatched = 0;
      for (const linear of linears) {
        const unpacked = await unpackLinear(checkpoint, linear, settings, report);
        if (!unpacked) continue;
        checkGroups(linear, unpacked, settings, report);
        if (fake) {
          compared++;
          if (!(await sameAsFakeQuant(fake, linear, unpacked, report))) mismatched++;
        }
      }
      if (fake) {
        const others = await compareOtherTensors(checkpoint, fake, linears, report);
        result.comparison = { against: options.against!, tensors: compared + others.compared, mismatched: mismatched + others.mismatched };
      }
    } finally {
      await fake?.close();
    }
    return finish();
  } finally {
    await checkpoint.close();
  }
}

function withoutRaw({ raw: _raw, ...rest }: GptqSettings) {
  return rest;
}

async function checkQuantizeConfig(dir: string, settings: GptqSettings, report: (p: string) => void): Promise<void> {
  const path = join(dir, 'quantize_config.json');
  const separate = await readJsonObject(path).catch(() => null);
  if (separate && !sameJson(separate, settings.raw)) report(`${path}: differs from config.json's quantization_config`);
}

function groupsOf(linear: LinearSpec, groupSize: number): number {
  return groupSize < 0 ? 1 : Math.ceil(linear.inFeatures / groupSize);
}

function checkTensorSet(
  checkpoint: Checkpoint,
  expected: ReturnType<typeof expectedTensors>,
  linears: LinearSpec[],
  settings: GptqSettings,
  report: (p: string) => void,
  keepUnknown: boolean,
): string[] {
  const byWeight = new Map(linears.map((l) => [`${l.prefix}.weight`, l]));
  const want = new Map<string, { dtype: string[]; shape: number[]; optional?: boolean }>();
  for (const t of expected) {
    const linear = byWeight.get(t.name);
    if (!linear) {
      want.set(t.name, { dtype: ['F16'], shape: t.shape, optional: t.optional });
      continue;
    }
    const shapes = gptqShapes(linear.outFeatures, linear.inFeatures, groupsOf(linear, settings.groupSize), settings.bits);
    want.set(`${linear.prefix}.qweight`, { dtype: ['I32'], shape: shapes.qweight });
    want.set(`${linear.prefix}.qzeros`, { dtype: ['I32'], shape: shapes.qzeros });
    want.set(`${linear.prefix}.scales`, { dtype: ['F16'], shape: shapes.scales });
    want.set(`${linear.prefix}.g_idx`, { dtype: ['I32'], shape: shapes.gIdx });
  }
  for (const [name, w] of want) {
    const found = checkpoint.tensors.get(name);
    if (!found) {
      if (!w.optional) report(`missing tensor ${name} [${w.shape.join(', ')}]`);
      continue;
    }
    if (!w.dtype.includes(found.dtype)) report(`${name} (${found.file}): expected ${w.dtype.join(' or ')}, found ${found.dtype}`);
    if (found.shape.join() !== w.shape.join()) report(`${name} (${found.file}): expected [${w.shape.join(', ')}], found [${found.shape.join(', ')}]`);
  }
  const unknown: string[] = [];
  for (const name of checkpoint.tensors.keys()) {
    if (want.has(name)) continue;
    if (keepUnknown && !byWeight.has(name)) unknown.push(name);
    else report(`unexpected tensor ${name} (${checkpoint.tensors.get(name)!.file})${byWeight.has(name) ? ': a quantized linear keeps no .weight' : ''}`);
  }
  return unknown;
}

async function unpackLinear(checkpoint: Checkpoint, linear: LinearSpec, s: GptqSettings, report: (p: string) => void): Promise<GptqUnpackedLinear | null> {
  const names = ['qweight', 'qzeros', 'scales', 'g_idx'].map((suffix) => `${linear.prefix}.${suffix}`);
  if (!names.every((name) => checkpoint.has(name))) return null;  // already reported as missing
  try {
    const [qweight, qzeros, scales, gIdx] = await Promise.all(names.map((name) => checkpoint.read(name)));
    return unpackGptqLinear(
      { qweight: qweight.data as Int32Array, qzeros: qzeros.data as Int32Array, scales: scales.data as Uint16Array, gIdx: gIdx.data as Int32Array },
      { rows: linear.outFeatures, cols: linear.inFeatures, groups: groupsOf(linear, s.groupSize), bits: s.bits },
      s.format,
    );
  } catch (error) {
    report(`${linear.prefix}: ${(error as Error).message}`);
    return null;
  }
}

/** Zero points in range, and g_idx as the settings imply (§2.5). */
function checkGroups(linear: LinearSpec, u: GptqUnpackedLinear, s: GptqSettings, report: (p: string) => void): void {
  const maxq = 2 ** s.bits - 1;
  const bad = u.zeros.findIndex((z) => z < 0 || z > maxq);
  if (bad >= 0) report(`${linear.prefix}.qzeros: zero point ${u.zeros[bad]} outside [0, ${maxq}] at row ${Math.floor(bad / (u.zeros.length / linear.outFeatures))}`);
  const g = s.groupSize < 0 ? linear.inFeatures : s.groupSize;
  const groups = groupsOf(linear, s.groupSize);
  const counts = new Array<number>(groups).fill(0);
  for (let k = 0; k < u.gIdx.length; k++) {
    const group = u.gIdx[k];
    if (!(group >= 0 && group < groups)) {
      report(`${linear.prefix}.g_idx[${k}] = ${group} is not a group in [0, ${groups})`);
      return;
    }
    counts[group]++;
    if (!(s.descAct && !s.staticGroups) && group !== Math.floor(k / g)) {
      report(`${linear.prefix}.g_idx[${k}] = ${group}, expected ${Math.floor(k / g)} (desc_act ${s.descAct}, static_groups ${s.staticGroups})`);
      return;
    }
  }
  const wrong = counts.findIndex((c, i) => c !== Math.min(g, linear.inFeatures - i * g));
  if (wrong >= 0) report(`${linear.prefix}.g_idx: group ${wrong} has ${counts[wrong]} columns, expected ${Math.min(g, linear.inFeatures - wrong * g)}`);
}

async function sameAsFakeQuant(fake: Model, linear: LinearSpec, u: GptqUnpackedLinear, report: (p: string) => void): Promise<boolean> {
  const name = `${linear.prefix}.weight`;
  const stored = await fake.checkpoint.read(name);
  const expected = encodeFloats(u.dequantize(), stored.dtype, name);
  const a = new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  const b = new Uint8Array(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength);
  const at = firstDifference(a, b);
  if (at < 0) return true;
  const index = Math.floor(at / (stored.dtype === 'F32' ? 4 : 2));
  report(`${name}: unpacked weights differ from the fake-quant export at element ${index} (row ${Math.floor(index / linear.inFeatures)}, column ${index % linear.inFeatures})`);
  return false;
}

/** Every non-quantized tensor of the GPTQ checkpoint is the fake-quant one rounded to F16. */
async function compareOtherTensors(checkpoint: Checkpoint, fake: Model, linears: LinearSpec[], report: (p: string) => void) {
  const quantized = new Set(linears.flatMap((l) => ['qweight', 'qzeros', 'scales', 'g_idx'].map((s) => `${l.prefix}.${s}`)));
  let compared = 0, mismatched = 0;
  for (const name of checkpoint.tensors.keys()) {
    if (quantized.has(name) || !fake.checkpoint.has(name)) continue;
    compared++;
    const [ours, theirs] = await Promise.all([checkpoint.read(name), fake.checkpoint.read(name)]);
    const expected = theirs.dtype === ours.dtype ? theirs.data : encodeFloats(toFloat32(theirs), ours.dtype, name);
    const at = firstDifference(
      new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength),
      new Uint8Array(ours.data.buffer, ours.data.byteOffset, ours.data.byteLength),
    );
    if (at >= 0) {
      mismatched++;
      report(`${name}: differs from the fake-quant export (as ${ours.dtype}) at byte ${at}`);
    }
  }
  return { compared, mismatched };
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
