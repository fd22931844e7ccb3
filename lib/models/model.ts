// loadModel: a checkpoint directory understood as one of the supported architectures, with
// every tensor checked against the config (presence, shape, dtype) before any work starts.
import { join } from 'node:path';
import { VlmqError, fileError } from '../errors.js';
import { CONFIG_FILE, Checkpoint } from '../io/checkpoint.js';
import type { Tensor } from '../tensor.js';
import { MODULE_GROUPS, layerLinears } from './decoder.js';
import { expectedTensors, parseModelConfig } from './registry.js';
import type { Architecture, ExpectedTensor, LinearSpec, ModelConfig, TensorLayout } from './types.js';

const FLOAT_DTYPES = new Set(['BF16', 'F16', 'F32']);

export class Model {
  private constructor(
    readonly checkpoint: Checkpoint,
    readonly architecture: Architecture,
    readonly config: ModelConfig,
    readonly layout: TensorLayout,
    /** Tensors the architecture does not describe (kept and copied as they are on export). */
    readonly unexpectedTensors: readonly string[],
  ) {}

  /** Opens and validates a model directory; only headers are read. */
  static async load(dir: string): Promise<Model> {
    const checkpoint = await Checkpoint.open(dir);
    try {
      const { architecture, config } = parseModelConfig(checkpoint.config, join(dir, CONFIG_FILE));
      const layout = architecture.layoutOf(new Set(checkpoint.tensors.keys()));
      const expected = expectedTensors(architecture, config, layout);
      checkTensors(checkpoint, expected);
      const known = new Set(expected.map((t) => t.name));
      const unexpected = [...checkpoint.tensors.keys()].filter((name) => !known.has(name));
      return new Model(checkpoint, architecture, config, layout, unexpected);
    } catch (error) {
      await checkpoint.close();
      throw error;
    }
  }

  get dir(): string {
    return this.checkpoint.dir;
  }

  /** The linears of decoder layer `layer`, in true-sequential order (MODULE_GROUPS). */
  layerLinears(layer: number): LinearSpec[] {
    return layerLinears(this.config.text, this.architecture.languagePrefixes(this.layout), layer);
  }

  /** Every decoder linear, layer by layer. */
  linears(): LinearSpec[] {
    return Array.from({ length: this.config.text.numLayers }, (_, layer) => this.layerLinears(layer)).flat();
  }

  get moduleGroups() {
    return MODULE_GROUPS;
  }

  async readLinear(linear: LinearSpec): Promise<{ weight: Tensor; bias: Tensor | null }> {
    const weight = await this.checkpoint.read(`${linear.prefix}.weight`);
    const bias = linear.bias ? await this.checkpoint.read(`${linear.prefix}.bias`) : null;
    return { weight, bias };
  }

  close(): Promise<void> {
    return this.checkpoint.close();
  }
}

/** DESIGN.md's entry point: `const model = await loadModel('Qwen2-VL-2B-Instruct/')`. */
export function loadModel(dir: string): Promise<Model> {
  return Model.load(dir);
}

function checkTensors(checkpoint: Checkpoint, expected: readonly ExpectedTensor[]): void {
  const missing: string[] = [];
  for (const want of expected) {
    const found = checkpoint.tensors.get(want.name);
    if (!found) {
      if (!want.optional) missing.push(`${want.name} [${want.shape.join(', ')}]`);
      continue;
    }
    const where = `${want.name} (${found.file})`;
    if (!FLOAT_DTYPES.has(found.dtype)) throw fileError(checkpoint.dir, `${where}: expected BF16, F16 or F32, found ${found.dtype}`);
    if (found.shape.length !== want.shape.length || found.shape.some((d, i) => d !== want.shape[i])) {
      throw fileError(checkpoint.dir, `${where}: expected [${want.shape.join(', ')}], found [${found.shape.join(', ')}] (config.json and the tensors disagree)`);
    }
  }
  if (missing.length) {
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, and ${missing.length - 5} more` : '');
    throw new VlmqError('ERR_VLMQ_BAD_FILE', `${checkpoint.dir}: ${missing.length} tensor(s) the config implies are missing: ${shown}`);
  }
}
