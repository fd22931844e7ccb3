// loadModel: a checkpoint directory understood as one of the supported architectures, with
// every tensor checked against the config (presence, shape, dtype, nothing unaccounted for)
// before any work starts. Tensor values are checked (finite) when they are read.
import { join } from 'node:path';
import { fileError, invalidParameterError } from '../errors.js';
import { CONFIG_FILE, Checkpoint } from '../io/checkpoint.js';
import { type Tensor, findNonFinite, unravelIndex } from '../tensor.js';
import { UNKNOWN_TENSOR_POLICIES, type UnknownTensorPolicy, checkTensors, floatRules, tensorProblemsError } from './checks.js';
import { MODULE_GROUPS, layerLinears } from './decoder.js';
import { expectedTensors, parseModelConfig } from './registry.js';
import type { Architecture, LinearSpec, ModelConfig, TensorLayout } from './types.js';

export interface LoadModelOptions {
  /**
   * Tensors the architecture and config.json do not account for (an extra decoder layer, a
   * renamed tensor): 'error' (default) refuses the checkpoint naming them; 'keep' loads it and
   * lists them in `model.unknownTensors`, for the export to copy unquantized.
   */
  unknownTensors?: UnknownTensorPolicy;
}

export class Model {
  private constructor(
    readonly checkpoint: Checkpoint,
    readonly architecture: Architecture,
    readonly config: ModelConfig,
    readonly layout: TensorLayout,
    /** Tensors the architecture does not account for; empty unless loaded with unknownTensors: 'keep'. */
    readonly unknownTensors: readonly string[],
  ) {}

  /** Opens and validates a model directory; only headers are read. */
  static async load(dir: string, options: LoadModelOptions = {}): Promise<Model> {
    const policy = unknownTensorPolicy(options);
    const checkpoint = await Checkpoint.open(dir);
    try {
      const { architecture, config } = parseModelConfig(checkpoint.config, join(dir, CONFIG_FILE));
      const layout = architecture.layoutOf(new Set(checkpoint.tensors.keys()));
      const naming = { layers: architecture.languagePrefixes(layout).layers, text: config.text };
      const { problems, unknownTensors } = checkTensors(checkpoint, floatRules(expectedTensors(architecture, config, layout)), naming);
      const refused = policy === 'keep' ? problems.filter((p) => p.kind !== 'unknown-tensors') : problems;
      if (refused.length) throw tensorProblemsError(dir, refused);
      return new Model(checkpoint, architecture, config, layout, unknownTensors);
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

  /**
   * One tensor's values; a floating tensor holding NaN or infinities is an error naming the
   * tensor and its file (a broken checkpoint, not something to quantize or copy).
   */
  async readTensor(name: string): Promise<Tensor> {
    const tensor = await this.checkpoint.read(name);
    const bad = findNonFinite(tensor);
    if (bad !== null) {
      const file = join(this.dir, this.checkpoint.info(name).file);
      throw fileError(file, `tensor '${name}' holds ${bad.count} NaN or infinite value(s), the first at [${unravelIndex(bad.first, tensor.shape).join(', ')}]; a checkpoint's weights must be finite`);
    }
    return tensor;
  }

  async readLinear(linear: LinearSpec): Promise<{ weight: Tensor; bias: Tensor | null }> {
    const weight = await this.readTensor(`${linear.prefix}.weight`);
    const bias = linear.bias ? await this.readTensor(`${linear.prefix}.bias`) : null;
    return { weight, bias };
  }

  close(): Promise<void> {
    return this.checkpoint.close();
  }
}

/** DESIGN.md's entry point: `const model = await loadModel('Qwen2-VL-2B-Instruct/')`. */
export function loadModel(dir: string, options?: LoadModelOptions): Promise<Model> {
  return Model.load(dir, options);
}

function unknownTensorPolicy(options: LoadModelOptions): UnknownTensorPolicy {
  if (options === null || typeof options !== 'object') throw invalidParameterError('options', 'an object', options);
  const policy = options.unknownTensors ?? 'error';
  if (!UNKNOWN_TENSOR_POLICIES.includes(policy)) throw invalidParameterError('unknownTensors', "'error' or 'keep'", policy);
  return policy;
}
