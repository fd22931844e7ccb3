// loadModel understands each supported architecture in each tensor layout and config.json style:
// dimensions, the seven decoder linears per layer, the true-sequential module groups, vision
// defaults and config errors. Expected values come from the fixture's config.json (read here) and
// from docs/formats.md §3.1–§3.3 and §4.1, never from the architecture descriptions under test.
import t from 'tap';
import { join } from 'node:path';
import { MODULE_GROUPS } from '../../lib/models/decoder.js';
import { loadModel } from '../../lib/models/model.js';
import type { QwenVisionConfig, SiglipVisionConfig } from '../../lib/models/types.js';
import { writeTinyCheckpoint, type Architecture, type Layout, type TextConfigStyle, type TinyCheckpointOptions } from '../fixtures/checkpoints.js';
import { editJson, readRawHeader, writeJson, type Json } from '../helpers/checkpoint-files.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { writeSafetensors } from '../../lib/io/safetensors-writer.js';

const LAYOUTS: Layout[] = ['original', 'transformers-4.52'];
const LINEAR_ORDER = ['k_proj', 'v_proj', 'q_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const PATH: Record<string, string> = {
  q_proj: 'self_attn.q_proj', k_proj: 'self_attn.k_proj', v_proj: 'self_attn.v_proj', o_proj: 'self_attn.o_proj',
  gate_proj: 'mlp.gate_proj', up_proj: 'mlp.up_proj', down_proj: 'mlp.down_proj',
};

interface Combo { architecture: Architecture; layout: Layout; style?: TextConfigStyle }

const COMBOS: Combo[] = [];
for (const architecture of ['qwen2_vl', 'qwen2_5_vl'] as const) {
  for (const layout of LAYOUTS) for (const style of ['flat', 'nested', 'both'] as const) COMBOS.push({ architecture, layout, style });
}
for (const layout of LAYOUTS) COMBOS.push({ architecture: 'llava_onevision', layout });

/** Text fields as the docs say to read them: Qwen flat and/or text_config; LLaVA-OV text_config. */
function textFieldsOf(config: Json, architecture: Architecture): Json {
  if (architecture === 'llava_onevision') return config.text_config;
  if (config.text_config && config.hidden_size !== undefined) {
    // "both": the two copies are the same values
    for (const key of ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'vocab_size']) {
      if (config[key] !== config.text_config[key]) throw new Error(`fixture: ${key} differs between the two copies`);
    }
  }
  return config.text_config ?? config;
}

function languagePrefix(architecture: Architecture, layout: Layout): { layers: string; lmHead: string } {
  if (layout === 'transformers-4.52') return { layers: 'model.language_model.layers', lmHead: 'lm_head.weight' };
  return architecture === 'llava_onevision'
    ? { layers: 'language_model.model.layers', lmHead: 'language_model.lm_head.weight' }
    : { layers: 'model.layers', lmHead: 'lm_head.weight' };
}

t.test('MODULE_GROUPS is the true-sequential order [k, v, q] → [o] → [gate, up] → [down]', async (t) => {
  t.strictSame(MODULE_GROUPS.map((g) => [...g]), [['k_proj', 'v_proj', 'q_proj'], ['o_proj'], ['gate_proj', 'up_proj'], ['down_proj']]);
});

for (const { architecture, layout, style } of COMBOS) {
  const title = `${architecture} ${layout}${style ? `, text fields ${style}` : ''}: loadModel reads the layout, dimensions and the 7 linears of every layer`;
  t.test(title, async (t) => {
    const dir = t.testdir();
    const options: TinyCheckpointOptions = { architecture, layout, layers: 3 };
    if (style) options.nestedTextConfig = style;
    const tiny = await writeTinyCheckpoint(join(dir, 'model'), options);
    const config = tiny.config as Json;
    if (style === 'flat') t.notOk('text_config' in config, 'fixture: no text_config');
    if (style === 'nested') t.notOk('hidden_size' in config, 'fixture: no top-level text fields');
    const tc = textFieldsOf(config, architecture);
    const H = tc.hidden_size, I = tc.intermediate_size, L = tc.num_hidden_layers;
    const heads = tc.num_attention_heads, kv = tc.num_key_value_heads, d = H / heads;

    const model = await loadModel(tiny.dir);
    t.teardown(() => model.close());
    t.equal(model.architecture.id, architecture);
    t.equal(model.layout, layout);
    t.strictSame(model.unknownTensors, [], 'every tensor of the checkpoint is one the architecture describes');
    const text = model.config.text;
    t.match(text, {
      hiddenSize: H, intermediateSize: I, numLayers: L, numHeads: heads, numKvHeads: kv, headDim: d,
      vocabSize: tc.vocab_size, rmsNormEps: tc.rms_norm_eps, ropeTheta: tc.rope_theta,
    });
    t.equal(text.tieWordEmbeddings, config.tie_word_embeddings, 'tie_word_embeddings');
    if (architecture === 'llava_onevision') t.equal(text.mropeSection, null, 'LLaVA-OV uses 1-D RoPE');
    else {
      t.strictSame(text.mropeSection, tc.rope_scaling.mrope_section, 'mrope_section from rope_scaling');
      t.equal(tc.rope_scaling.mrope_section.reduce((a: number, b: number) => a + b, 0), d / 2, 'fixture: sections sum to head_dim / 2');
    }

    const vc = config.vision_config;
    if (architecture === 'qwen2_vl') {
      t.match(model.config.vision as QwenVisionConfig, {
        kind: 'qwen2_vl', depth: vc.depth, width: vc.embed_dim, numHeads: vc.num_heads, intermediateSize: vc.embed_dim * vc.mlp_ratio,
        outHiddenSize: vc.hidden_size, patchSize: vc.patch_size, temporalPatchSize: vc.temporal_patch_size, spatialMergeSize: vc.spatial_merge_size,
      });
    } else if (architecture === 'qwen2_5_vl') {
      t.match(model.config.vision as QwenVisionConfig, {
        kind: 'qwen2_5_vl', depth: vc.depth, width: vc.hidden_size, numHeads: vc.num_heads, intermediateSize: vc.intermediate_size,
        outHiddenSize: vc.out_hidden_size, windowSize: vc.window_size, fullattBlockIndexes: vc.fullatt_block_indexes,
      });
    } else {
      t.match(model.config.vision as SiglipVisionConfig, {
        kind: 'siglip', depth: vc.num_hidden_layers, width: vc.hidden_size, numHeads: vc.num_attention_heads,
        intermediateSize: vc.intermediate_size, patchSize: vc.patch_size, imageSize: vc.image_size,
      });
    }

    const { layers } = languagePrefix(architecture, layout);
    const shapes: Record<string, [number, number]> = {
      q_proj: [heads * d, H], k_proj: [kv * d, H], v_proj: [kv * d, H], o_proj: [H, heads * d],
      gate_proj: [I, H], up_proj: [I, H], down_proj: [H, I],
    };
    const all = model.linears();
    t.equal(all.length, 7 * L, '7 linears per decoder layer');
    for (let layer = 0; layer < L; layer++) {
      const linears = model.layerLinears(layer);
      t.strictSame(linears.map((l) => l.module), LINEAR_ORDER, `layer ${layer}: linears in MODULE_GROUPS order`);
      t.strictSame(all.slice(7 * layer, 7 * layer + 7), linears, `layer ${layer}: linears() lists layer by layer`);
      for (const linear of linears) {
        const [out, inp] = shapes[linear.module];
        const prefix = `${layers}.${layer}.${PATH[linear.module]}`;
        const bias = ['q_proj', 'k_proj', 'v_proj'].includes(linear.module);
        t.strictSame(linear, { layer, module: linear.module, prefix, inFeatures: inp, outFeatures: out, bias }, `${prefix}`);
        t.strictSame(tiny.tensors.get(`${prefix}.weight`)?.shape, [out, inp], `${prefix}.weight is in the checkpoint as [${out}, ${inp}]`);
        t.equal(tiny.tensors.has(`${prefix}.bias`), bias, `${prefix}.bias ${bias ? 'present' : 'absent'} in the checkpoint`);
      }
    }
    t.strictSame(model.moduleGroups.map((g) => [...g]), [['k_proj', 'v_proj', 'q_proj'], ['o_proj'], ['gate_proj', 'up_proj'], ['down_proj']]);
  });
}

t.test('a config with only model_type (no architectures) still selects the architecture', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_5_vl' });
  await editJson(join(tiny.dir, 'config.json'), (c) => { delete c.architectures; });
  const model = await loadModel(tiny.dir);
  t.equal(model.architecture.id, 'qwen2_5_vl');
  await model.close();
});

t.test('lm_head is optional when the embeddings are tied and required when they are not', async (t) => {
  const dir = t.testdir();
  const tied = await writeTinyCheckpoint(join(dir, 'tied'), { architecture: 'qwen2_vl', tieWordEmbeddings: true });
  t.notOk(tied.tensors.has('lm_head.weight'), 'fixture: tied model has no lm_head');
  const model = await loadModel(tied.dir);
  t.equal(model.config.text.tieWordEmbeddings, true);
  await model.close();
  const untied = await writeTinyCheckpoint(join(dir, 'untied'), { architecture: 'qwen2_vl', tieWordEmbeddings: false });
  const file = join(untied.dir, 'model.safetensors');
  const { tensors } = await loadSafetensors(file);
  await writeSafetensors(file, [...tensors].filter(([n]) => n !== 'lm_head.weight').map(([name, x]) => ({ name, dtype: x.dtype, shape: x.shape, data: x.data })));
  await t.rejects(loadModel(untied.dir), { code: 'ERR_VLMQ_BAD_FILE', message: /1 tensor\(s\) the config implies are missing: lm_head\.weight \[256, 64\]/ });
});

// --- vision defaults ----------------------------------------------------------------------------

/** Writes a fixture, deletes vision_config fields, and returns its dir. */
async function withoutVisionFields(dir: string, architecture: Architecture, fields: string[], layout: Layout = 'original'): Promise<string> {
  const tiny = await writeTinyCheckpoint(join(dir, 'model'), { architecture, layout });
  await editJson(join(tiny.dir, 'config.json'), (c) => {
    for (const f of fields) {
      if (!(f in c.vision_config)) throw new Error(`fixture has no vision_config.${f}`);
      delete c.vision_config[f];
    }
  });
  return tiny.dir;
}

t.test('Qwen2-VL: missing vision fields whose class defaults match the tensors (patch 14, temporal 2, merge 2, 3 channels, mlp_ratio 4, hidden_size = LLM width) are filled in', async (t) => {
  for (const layout of LAYOUTS) {
    const fields = ['patch_size', 'temporal_patch_size', 'spatial_merge_size', 'in_chans', 'mlp_ratio', 'hidden_size', ...(layout === 'original' ? [] : ['in_channels'])];
    const dir = await withoutVisionFields(join(t.testdir(), layout), 'qwen2_vl', fields, layout);
    const model = await loadModel(dir);
    // fixture: embed_dim 32 (kept), hidden 64
    t.match(model.config.vision, { patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2, inChannels: 3, intermediateSize: 32 * 4, outHiddenSize: 64 }, layout);
    await model.close();
  }
});

t.test('Qwen2-VL: a missing embed_dim defaults to 1280, and the patch embedding [32, …] is reported as disagreeing', async (t) => {
  const dir = await withoutVisionFields(t.testdir(), 'qwen2_vl', ['embed_dim']);
  await t.rejects(loadModel(dir), {
    code: 'ERR_VLMQ_BAD_FILE',
    message: /visual\.patch_embed\.proj\.weight \(model\.safetensors\): expected \[1280, 3, 2, 14, 14\], found \[32, 3, 2, 14, 14\]/,
  });
});

t.test('Qwen2-VL: a missing depth defaults to 32 blocks, and the 30 absent blocks (12 tensors each) are reported missing', async (t) => {
  const dir = await withoutVisionFields(t.testdir(), 'qwen2_vl', ['depth']);
  await t.rejects(loadModel(dir), { code: 'ERR_VLMQ_BAD_FILE', message: /360 tensor\(s\) the config implies are missing: visual\.blocks\.2\.norm1\.weight \[32\].*and 355 more/ });
});

t.test('Qwen2.5-VL: missing vision fields whose class defaults match (patch 14, temporal 2, merge 2, channels 3, window 112, out_hidden_size = LLM width) are filled in', async (t) => {
  const dir = await withoutVisionFields(t.testdir(), 'qwen2_5_vl', ['patch_size', 'temporal_patch_size', 'spatial_merge_size', 'in_chans', 'window_size', 'out_hidden_size']);
  const model = await loadModel(dir);
  t.match(model.config.vision, { patchSize: 14, temporalPatchSize: 2, spatialMergeSize: 2, inChannels: 3, windowSize: 112, outHiddenSize: 64, width: 32 });
  await model.close();
});

t.test('Qwen2.5-VL: a missing vision intermediate_size defaults to 3420 and the gated MLP [64, 32] is reported as disagreeing', async (t) => {
  const dir = await withoutVisionFields(t.testdir(), 'qwen2_5_vl', ['intermediate_size']);
  await t.rejects(loadModel(dir), { code: 'ERR_VLMQ_BAD_FILE', message: /visual\.blocks\.0\.mlp\.gate_proj\.weight \(model\.safetensors\): expected \[3420, 32\], found \[64, 32\]/ });
});

t.test('Qwen2.5-VL: missing fullatt_block_indexes default to [7, 15, 23, 31], which a 2-block tower cannot have', async (t) => {
  const dir = await withoutVisionFields(t.testdir(), 'qwen2_5_vl', ['fullatt_block_indexes']);
  await t.rejects(loadModel(dir), { code: 'ERR_VLMQ_BAD_FILE', message: /config\.json: vision_config\.fullatt_block_indexes: .*below depth \(2\).*\[7, 15, 23, 31\]/ });
});

t.test('LLaVA-OV: missing SigLIP fields whose defaults match (patch 14, 3 channels, eps 1e-6) are filled in', async (t) => {
  const dir = await withoutVisionFields(t.testdir(), 'llava_onevision', ['patch_size', 'num_channels', 'layer_norm_eps']);
  const model = await loadModel(dir);
  t.match(model.config.vision, { kind: 'siglip', patchSize: 14, inChannels: 3, layerNormEps: 1e-6, width: 32, imageSize: 28 });
  await model.close();
});

t.test('LLaVA-OV: a missing SigLIP hidden_size defaults to 1152 and the patch embedding [32, 3, 14, 14] is reported as disagreeing', async (t) => {
  const dir = await withoutVisionFields(t.testdir(), 'llava_onevision', ['hidden_size']);
  await t.rejects(loadModel(dir), {
    code: 'ERR_VLMQ_BAD_FILE',
    message: /vision_tower\.vision_model\.embeddings\.patch_embedding\.weight \(model\.safetensors\): expected \[1152, 3, 14, 14\], found \[32, 3, 14, 14\]/,
  });
});

t.test('LLaVA-OV: the real SigLIP geometry (image_size 384, patch_size 14 → 27 × 27 = 729 positions, formats.md §4.1) loads', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'llava_onevision' });
  await editJson(join(tiny.dir, 'config.json'), (c) => { c.vision_config.image_size = 384; });
  const file = join(tiny.dir, 'model.safetensors');
  const name = 'vision_tower.vision_model.embeddings.position_embedding.weight';
  t.strictSame((await readRawHeader(file)).tensors.get(name)?.shape, [4, 32], 'fixture: 2 × 2 positions of width 32');
  const { tensors } = await loadSafetensors(file);
  await writeSafetensors(file, [...tensors].map(([n, x]) => n === name
    ? { name: n, dtype: x.dtype, shape: [729, 32], data: new Uint16Array(729 * 32) }
    : { name: n, dtype: x.dtype, shape: x.shape, data: x.data }));
  const result = await loadModel(tiny.dir).then((m) => m, (e: Error) => e);
  t.notOk(result instanceof Error, `loads (got: ${result instanceof Error ? result.message : 'a model'})`);
  if (!(result instanceof Error)) {
    t.match(result.config.vision, { imageSize: 384, patchSize: 14 });
    await result.close();
  }
});

// --- config errors --------------------------------------------------------------------------------

t.test('Qwen text fields both flat and nested must agree; a disagreement names both fields and values', async (t) => {
  const cases: [string, (c: Json) => void, RegExp][] = [
    ['hidden_size', (c) => { c.text_config.hidden_size = 128; }, /text_config\.hidden_size \(128\) and hidden_size \(64\) disagree/],
    ['num_key_value_heads', (c) => { c.num_key_value_heads = 4; }, /text_config\.num_key_value_heads \(2\) and num_key_value_heads \(4\) disagree/],
    ['rope_scaling', (c) => { c.text_config.rope_scaling.mrope_section = [2, 2, 4]; }, /text_config\.rope_scaling \(.*\[2,2,4\].*\) and rope_scaling \(.*\[2,3,3\].*\) disagree/],
  ];
  const dir = t.testdir();
  for (const [field, edit, pattern] of cases) {
    const tiny = await writeTinyCheckpoint(join(dir, field), { architecture: 'qwen2_vl', nestedTextConfig: 'both' });
    t.strictSame((tiny.config as Json).rope_scaling.mrope_section, [2, 3, 3], 'fixture: mrope_section [2, 3, 3] for head_dim 16');
    await editJson(join(tiny.dir, 'config.json'), edit);
    await t.rejects(loadModel(tiny.dir), { code: 'ERR_VLMQ_BAD_FILE', message: pattern }, field);
  }
});

t.test('flat and nested copies that hold the same rope_scaling with keys in another order agree', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl', nestedTextConfig: 'both', ropeScalingStyle: 'default' });
  await editJson(join(tiny.dir, 'config.json'), (c) => {
    const { mrope_section, rope_type, type } = c.rope_scaling;
    c.rope_scaling = { type, rope_type, mrope_section };
    c.text_config.rope_scaling = { mrope_section, rope_type, type };
  });
  const result = await loadModel(tiny.dir).then((m) => m, (e: Error) => e);
  t.notOk(result instanceof Error, `loads (got: ${result instanceof Error ? result.message : 'a model'})`);
  if (!(result instanceof Error)) await result.close();
});

t.test('an mrope_section that does not sum to head_dim / 2 is an error naming the field, the target and the value', async (t) => {
  const dir = t.testdir();
  for (const style of ['flat', 'nested', 'both'] as const) {
    for (const section of [[2, 3, 4], [4, 4]]) {
      const tiny = await writeTinyCheckpoint(join(dir, `${style}-${section.length}`), { architecture: 'qwen2_5_vl', nestedTextConfig: style });
      await editJson(join(tiny.dir, 'config.json'), (c) => {
        if (c.rope_scaling) c.rope_scaling.mrope_section = section;
        if (c.text_config) c.text_config.rope_scaling.mrope_section = section;
      });
      await t.rejects(loadModel(tiny.dir), {
        code: 'ERR_VLMQ_BAD_FILE',
        message: new RegExp(`config\\.json: (text_config\\.)?rope_scaling\\.mrope_section: expected 3 sections summing to head_dim / 2 = 8, found \\[${section.join(', ')}\\]`),
      }, `${style} [${section}]`);
    }
  }
});

t.test('an unknown architecture is an error that lists every supported one', async (t) => {
  const tiny = await writeTinyCheckpoint(join(t.testdir(), 'model'), { architecture: 'qwen2_vl' });
  await editJson(join(tiny.dir, 'config.json'), (c) => { c.architectures = ['Idefics3ForConditionalGeneration']; c.model_type = 'idefics3'; });
  const error = await loadModel(tiny.dir).then(() => null, (e: Error & { code?: string }) => e);
  t.equal(error?.code, 'ERR_VLMQ_UNSUPPORTED_MODEL');
  t.match(error?.message, /config\.json: unsupported architecture "Idefics3ForConditionalGeneration"/);
  for (const supported of ['Qwen2VLForConditionalGeneration', 'Qwen2_5_VLForConditionalGeneration', 'LlavaOnevisionForConditionalGeneration']) {
    t.match(error?.message, supported, `lists ${supported}`);
  }
});

t.test('config.json that is not an object, or lacks a required text field, is an error naming the file and field', async (t) => {
  const dir = t.testdir();
  const a = await writeTinyCheckpoint(join(dir, 'array'), { architecture: 'qwen2_vl' });
  await writeJson(join(a.dir, 'config.json'), [1, 2]);
  await t.rejects(loadModel(a.dir), { code: 'ERR_VLMQ_BAD_FILE', message: /config\.json: expected a JSON object/ });
  const b = await writeTinyCheckpoint(join(dir, 'nohidden'), { architecture: 'llava_onevision' });
  await editJson(join(b.dir, 'config.json'), (c) => { delete c.text_config.hidden_size; });
  await t.rejects(loadModel(b.dir), { code: 'ERR_VLMQ_BAD_FILE', message: /config\.json: text_config\.hidden_size: expected an integer ≥ 1 \(required\), found undefined/ });
});
