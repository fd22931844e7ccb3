// The tiny-checkpoint generators (test/fixtures/checkpoints.ts) write what a Hugging Face checkpoint
// of each supported architecture looks like. Expected tensor names and shapes are derived here from
// config.json and the tables of docs/formats.md §3.3 / §4.1, not from the generator's internals.
import t from 'tap';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { loadSafetensors, readSafetensorsHeader } from '../../lib/io/safetensors-reader.js';
import { toFloat32, type DType } from '../../lib/tensor.js';
import {
  CORRUPTION_KINDS, INDEX_FILE, corruptCheckpoint, writeTinyCheckpoint,
  type Architecture, type Layout, type TinyCheckpoint, type TinyCheckpointOptions,
} from '../fixtures/checkpoints.js';

type Json = any;

const ARCHITECTURES: Architecture[] = ['qwen2_vl', 'qwen2_5_vl', 'llava_onevision'];
const LAYOUTS: Layout[] = ['original', 'transformers-4.52'];

async function readJson(path: string): Promise<Json> {
  return JSON.parse(await readFile(path, 'utf8'));
}

/** The text fields of a config: LLaVA-OV's text_config; Qwen's text_config or top level. */
function textConfig(config: Json, architecture: Architecture): Json {
  if (architecture === 'llava_onevision') return config.text_config;
  return config.text_config ?? config;
}

/** Every tensor name → shape a checkpoint with this config must hold (docs/formats.md §3.3, §4.1). */
function expectedShapes(config: Json, architecture: Architecture, layout: Layout): Map<string, number[]> {
  const tc = textConfig(config, architecture);
  const H: number = tc.hidden_size;
  const I: number = tc.intermediate_size;
  const V: number = tc.vocab_size;
  const nq: number = tc.num_attention_heads;
  const nkv: number = tc.num_key_value_heads;
  const d = H / nq;
  const tie: boolean = config.tie_word_embeddings;
  const modern = layout === 'transformers-4.52';
  const shapes = new Map<string, number[]>();
  const add = (name: string, shape: number[]) => shapes.set(name, shape);

  let text: string;
  let lmHead: string;
  if (architecture === 'llava_onevision') {
    text = modern ? 'model.language_model.' : 'language_model.model.';
    lmHead = modern ? 'lm_head.weight' : 'language_model.lm_head.weight';
  } else {
    text = modern ? 'model.language_model.' : 'model.';
    lmHead = 'lm_head.weight';
  }
  add(`${text}embed_tokens.weight`, [V, H]);
  for (let i = 0; i < tc.num_hidden_layers; i++) {
    const l = `${text}layers.${i}.`;
    add(`${l}input_layernorm.weight`, [H]);
    add(`${l}self_attn.q_proj.weight`, [nq * d, H]);
    add(`${l}self_attn.q_proj.bias`, [nq * d]);
    add(`${l}self_attn.k_proj.weight`, [nkv * d, H]);
    add(`${l}self_attn.k_proj.bias`, [nkv * d]);
    add(`${l}self_attn.v_proj.weight`, [nkv * d, H]);
    add(`${l}self_attn.v_proj.bias`, [nkv * d]);
    add(`${l}self_attn.o_proj.weight`, [H, nq * d]);
    add(`${l}post_attention_layernorm.weight`, [H]);
    add(`${l}mlp.gate_proj.weight`, [I, H]);
    add(`${l}mlp.up_proj.weight`, [I, H]);
    add(`${l}mlp.down_proj.weight`, [H, I]);
  }
  add(`${text}norm.weight`, [H]);
  if (!tie) add(lmHead, [V, H]);

  const vc = config.vision_config;
  if (architecture === 'llava_onevision') {
    const v = modern ? 'model.vision_tower.vision_model.' : 'vision_tower.vision_model.';
    const p = modern ? 'model.multi_modal_projector.' : 'multi_modal_projector.';
    const W: number = vc.hidden_size;
    const P: number = vc.patch_size;
    add(modern ? 'model.image_newline' : 'image_newline', [H]);
    add(`${v}embeddings.patch_embedding.weight`, [W, 3, P, P]);
    add(`${v}embeddings.patch_embedding.bias`, [W]);
    add(`${v}embeddings.position_embedding.weight`, [(vc.image_size / P) ** 2, W]);
    for (let i = 0; i < vc.num_hidden_layers; i++) {
      const l = `${v}encoder.layers.${i}.`;
      for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
        add(`${l}self_attn.${proj}.weight`, [W, W]);
        add(`${l}self_attn.${proj}.bias`, [W]);
      }
      for (const norm of ['layer_norm1', 'layer_norm2']) {
        add(`${l}${norm}.weight`, [W]);
        add(`${l}${norm}.bias`, [W]);
      }
      add(`${l}mlp.fc1.weight`, [vc.intermediate_size, W]);
      add(`${l}mlp.fc1.bias`, [vc.intermediate_size]);
      add(`${l}mlp.fc2.weight`, [W, vc.intermediate_size]);
      add(`${l}mlp.fc2.bias`, [W]);
    }
    add(`${v}post_layernorm.weight`, [W]);
    add(`${v}post_layernorm.bias`, [W]);
    add(`${p}linear_1.weight`, [H, W]);
    add(`${p}linear_1.bias`, [H]);
    add(`${p}linear_2.weight`, [H, H]);
    add(`${p}linear_2.bias`, [H]);
    return shapes;
  }

  const is25 = architecture === 'qwen2_5_vl';
  const v = modern ? 'model.visual.' : 'visual.';
  const W: number = is25 ? vc.hidden_size : vc.embed_dim;
  const out: number = is25 ? vc.out_hidden_size : vc.hidden_size;
  const merged = W * vc.spatial_merge_size ** 2;
  add(`${v}patch_embed.proj.weight`, [W, vc.in_chans, vc.temporal_patch_size, vc.patch_size, vc.patch_size]);
  for (let j = 0; j < vc.depth; j++) {
    const b = `${v}blocks.${j}.`;
    for (const norm of ['norm1', 'norm2']) {
      add(`${b}${norm}.weight`, [W]);
      if (!is25) add(`${b}${norm}.bias`, [W]);
    }
    add(`${b}attn.qkv.weight`, [3 * W, W]);
    add(`${b}attn.qkv.bias`, [3 * W]);
    add(`${b}attn.proj.weight`, [W, W]);
    add(`${b}attn.proj.bias`, [W]);
    if (is25) {
      const VI: number = vc.intermediate_size;
      add(`${b}mlp.gate_proj.weight`, [VI, W]);
      add(`${b}mlp.gate_proj.bias`, [VI]);
      add(`${b}mlp.up_proj.weight`, [VI, W]);
      add(`${b}mlp.up_proj.bias`, [VI]);
      add(`${b}mlp.down_proj.weight`, [W, VI]);
      add(`${b}mlp.down_proj.bias`, [W]);
    } else {
      const M = W * vc.mlp_ratio;
      add(`${b}mlp.fc1.weight`, [M, W]);
      add(`${b}mlp.fc1.bias`, [M]);
      add(`${b}mlp.fc2.weight`, [W, M]);
      add(`${b}mlp.fc2.bias`, [W]);
    }
  }
  add(`${v}merger.ln_q.weight`, [W]);
  if (!is25) add(`${v}merger.ln_q.bias`, [W]);
  add(`${v}merger.mlp.0.weight`, [merged, merged]);
  add(`${v}merger.mlp.0.bias`, [merged]);
  add(`${v}merger.mlp.2.weight`, [out, merged]);
  add(`${v}merger.mlp.2.bias`, [out]);
  return shapes;
}

/** What the safetensors files on disk hold: name → { dtype, shape, bytes, file }. */
async function tensorsOnDisk(dir: string, files: string[]) {
  const found = new Map<string, { dtype: DType; shape: number[]; byteLength: number; file: string }>();
  const duplicates: string[] = [];
  for (const file of files) {
    for (const info of (await readSafetensorsHeader(join(dir, file))).tensors.values()) {
      if (found.has(info.name)) duplicates.push(info.name);
      found.set(info.name, { dtype: info.dtype, shape: [...info.shape], byteLength: info.byteLength, file });
    }
  }
  return { found, duplicates };
}

const isNorm = (name: string) => /(norm[^.]*|ln_q|layer_norm\d)\.weight$/.test(name);

type Asserts = Pick<typeof t, 'equal' | 'same' | 'ok' | 'notOk' | 'match' | 'not' | 'rejects' | 'throws' | 'fail' | 'strictSame'>;

/** Checks a generated checkpoint against its own config.json and the format rules. */
async function checkCheckpoint(t: Asserts, ck: TinyCheckpoint, shards: number): Promise<void> {
  const { dir } = ck;
  const onDisk = (await readdir(dir)).sort();
  t.same(onDisk, ck.files, 'the files on disk are the files reported');
  const config = await readJson(join(dir, 'config.json'));
  t.same(config, ck.config, 'config.json holds the reported config');

  const shardFiles = shards === 1
    ? ['model.safetensors']
    : Array.from({ length: shards }, (_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`);
  t.same(ck.shardFiles, shardFiles, 'shard files are named as huggingface_hub names them');
  for (const file of shardFiles) t.ok(onDisk.includes(file), `${file} exists`);
  t.equal(onDisk.includes(INDEX_FILE), shards > 1, shards > 1 ? 'sharded: index present' : 'single file: no index');

  const { found, duplicates } = await tensorsOnDisk(dir, shardFiles);
  t.same(duplicates, [], 'no tensor is stored twice');
  const expected = expectedShapes(config, ck.architecture, ck.layout);
  t.same([...found.keys()].sort(), [...expected.keys()].sort(), 'tensor names are exactly those the config implies');
  for (const [name, shape] of expected) {
    const got = found.get(name);
    if (got === undefined) continue;
    if (JSON.stringify(got.shape) !== JSON.stringify(shape)) t.fail(`${name}: expected [${shape}], found [${got.shape}]`);
    if (got.dtype !== ck.dtype) t.fail(`${name}: expected ${ck.dtype}, found ${got.dtype}`);
  }
  t.ok([...found.values()].every((x) => x.dtype === ck.dtype), `every tensor is ${ck.dtype}`);
  for (const [name, info] of ck.tensors) {
    const got = found.get(name);
    t.ok(got && got.file === info.file && JSON.stringify(got.shape) === JSON.stringify(info.shape), `${name}: reported file and shape match the disk`);
  }

  if (shards > 1) {
    const index = await readJson(join(dir, INDEX_FILE));
    const mapped = Object.keys(index.weight_map).sort();
    t.same(mapped, [...found.keys()].sort(), 'weight_map covers every tensor exactly once');
    t.ok(Object.entries(index.weight_map).every(([name, file]) => found.get(name)?.file === file), 'weight_map points at the shard that holds each tensor');
    const total = [...found.values()].reduce((a, x) => a + x.byteLength, 0);
    t.equal(index.metadata.total_size, total, 'metadata.total_size = sum of tensor byte sizes');
    for (const file of shardFiles) t.ok([...found.values()].some((x) => x.file === file), `${file} is not empty`);
  }

  // Every tensor reads back; values are finite, norms ≈ 1, the rest ≈ N(0, 0.02²).
  let bad = 0;
  for (const file of shardFiles) {
    const { metadata, tensors } = await loadSafetensors(join(dir, file));
    t.same(metadata, { format: 'pt' }, `${file} has __metadata__.format = pt`);
    for (const [name, tensor] of tensors) {
      const values = toFloat32(tensor);
      let sum = 0;
      let sumSq = 0;
      for (const x of values) {
        if (!Number.isFinite(x)) bad++;
        sum += x;
        sumSq += x * x;
      }
      const mean = sum / values.length;
      const std = Math.sqrt(Math.max(0, sumSq / values.length - mean * mean));
      if (isNorm(name)) {
        if (Math.abs(mean - 1) > 0.02) t.fail(`${name}: norm weight mean ${mean}, expected ≈ 1`);
      } else if (values.length >= 512 && (Math.abs(mean) > 0.01 || std < 0.015 || std > 0.025)) {
        t.fail(`${name}: mean ${mean}, std ${std}, expected ≈ N(0, 0.02²)`);
      }
    }
  }
  t.equal(bad, 0, 'every value is finite');

  const tc = textConfig(config, ck.architecture);
  t.equal(ck.quantizable.length, 7 * tc.num_hidden_layers, 'seven quantizable Linears per decoder layer');
  for (const module of ck.quantizable) {
    const w = found.get(`${module}.weight`);
    t.ok(w !== undefined && w.shape.length === 2, `${module}.weight is a stored 2-D weight`);
    t.match(module, /(^model\.|^model\.language_model\.|^language_model\.model\.)layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)$/);
  }
}

const VARIANTS: Array<{ shards: number; dtype: 'BF16' | 'F16' | 'F32' }> = [
  { shards: 1, dtype: 'BF16' },
  { shards: 3, dtype: 'F16' },
  { shards: 2, dtype: 'F32' },
];

for (const architecture of ARCHITECTURES) {
  for (const layout of LAYOUTS) {
    for (const { shards, dtype } of VARIANTS) {
      t.test(`${architecture}, ${layout} layout, ${shards} shard(s), ${dtype}: files, names and shapes follow config.json`, async (t) => {
        const started = performance.now();
        const ck = await writeTinyCheckpoint(t.testdir(), { architecture, layout, shards, dtype, seed: 7 });
        const ms = performance.now() - started;
        t.ok(ms < 1000, `generated in ${ms.toFixed(0)} ms (< 1 s)`);
        await checkCheckpoint(t, ck, shards);
      });
    }
  }
}

t.test('tie_word_embeddings decides whether lm_head is stored, for every architecture', async (t) => {
  const root = t.testdir();
  for (const architecture of ARCHITECTURES) {
    for (const tie of [true, false]) {
      const ck = await writeTinyCheckpoint(join(root, `${architecture}-${tie}`), { architecture, tieWordEmbeddings: tie, layout: 'original' });
      const head = architecture === 'llava_onevision' ? 'language_model.lm_head.weight' : 'lm_head.weight';
      t.equal(ck.tensors.has(head), !tie, `${architecture} tie=${tie}: ${head} ${tie ? 'absent' : 'present'}`);
      t.equal(ck.config.tie_word_embeddings, tie);
      await checkCheckpoint(t, ck, 1);
    }
  }
  const qwen = await writeTinyCheckpoint(join(root, 'default-qwen'), { architecture: 'qwen2_vl' });
  t.equal(qwen.config.tie_word_embeddings, true, 'Qwen2-VL defaults to tied embeddings (2B-like)');
  const llava = await writeTinyCheckpoint(join(root, 'default-llava'), { architecture: 'llava_onevision', layout: 'transformers-4.52' });
  t.ok(llava.tensors.has('lm_head.weight'), 'LLaVA-OV defaults to an untied lm_head (new layout name lm_head.weight)');
});

t.test('Qwen text fields: flat, nested under text_config, or both (agreeing)', async (t) => {
  const root = t.testdir();
  const textKeys = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'rms_norm_eps', 'rope_theta', 'rope_scaling', 'vocab_size', 'max_position_embeddings', 'hidden_act'];
  for (const architecture of ['qwen2_vl', 'qwen2_5_vl'] as const) {
    for (const style of ['flat', 'nested', 'both'] as const) {
      const ck = await writeTinyCheckpoint(join(root, `${architecture}-${style}`), { architecture, nestedTextConfig: style, layout: 'transformers-4.52' });
      const c = ck.config as Json;
      t.equal('text_config' in c, style !== 'flat', `${architecture} ${style}: text_config ${style === 'flat' ? 'absent' : 'present'}`);
      for (const key of textKeys) t.equal(key in c, style !== 'nested', `${architecture} ${style}: top-level ${key}`);
      if (style !== 'flat') {
        t.equal(c.text_config.model_type, `${architecture}_text`);
        for (const key of textKeys) t.ok(key in c.text_config, `text_config.${key}`);
      }
      if (style === 'both') for (const key of textKeys) t.same(c[key], c.text_config[key], `${key} agrees in both places`);
      await checkCheckpoint(t, ck, 1);
    }
  }
  const original = await writeTinyCheckpoint(join(root, 'orig'), { architecture: 'qwen2_vl' });
  t.notOk('text_config' in original.config, 'original layout defaults to flat (Hub uploads)');
  const modern = await writeTinyCheckpoint(join(root, 'modern'), { architecture: 'qwen2_vl', layout: 'transformers-4.52' });
  t.ok('text_config' in modern.config && 'hidden_size' in modern.config, 'transformers-4.52 layout defaults to both');
});

t.test('Qwen config.json: architecture names, mrope_section, vision_config as the Hub files have them', async (t) => {
  const root = t.testdir();
  for (const [architecture, archName] of [['qwen2_vl', 'Qwen2VLForConditionalGeneration'], ['qwen2_5_vl', 'Qwen2_5_VLForConditionalGeneration']] as const) {
    for (const layout of LAYOUTS) {
      const ck = await writeTinyCheckpoint(join(root, `${architecture}-${layout}`), { architecture, layout, vision: { depth: 4 } });
      const c = ck.config as Json;
      const tc = textConfig(c, architecture);
      t.same(c.architectures, [archName]);
      t.equal(c.model_type, architecture);
      t.equal(tc.rms_norm_eps, 1e-6);
      t.equal(tc.rope_theta, 1e6);
      t.equal(tc.hidden_act, 'silu');
      t.equal(c.torch_dtype, 'bfloat16');
      const headDim = tc.hidden_size / tc.num_attention_heads;
      t.equal(headDim, 16, 'default head_dim is 16');
      const section: number[] = tc.rope_scaling.mrope_section;
      t.equal(section.length, 3);
      t.equal(section.reduce((a, b) => a + b, 0), headDim / 2, 'mrope_section sums to head_dim / 2');
      t.same(section, [2, 3, 3]);
      if (layout === 'original') t.same(tc.rope_scaling, { type: 'mrope', mrope_section: section }, 'Hub-style rope_scaling');
      else t.same(tc.rope_scaling, { type: 'default', rope_type: 'default', mrope_section: section }, 'rope_scaling as transformers ≥ 4.52 saves it');
      const vc = c.vision_config;
      t.equal(vc.depth, 4);
      t.equal(vc.patch_size, 14);
      t.equal(vc.temporal_patch_size, 2);
      t.equal(vc.spatial_merge_size, 2);
      t.equal(vc.in_chans, 3);
      if (architecture === 'qwen2_vl') {
        t.equal(vc.hidden_size, tc.hidden_size, 'Qwen2-VL vision_config.hidden_size is the merger output = LLM hidden');
        t.equal(vc.mlp_ratio, 4);
        t.ok(vc.embed_dim % vc.num_heads === 0);
      } else {
        t.equal(vc.out_hidden_size, tc.hidden_size, 'Qwen2.5-VL out_hidden_size = LLM hidden');
        t.equal(vc.window_size, 112);
        t.equal(vc.tokens_per_second, 2);
        t.equal(vc.hidden_act, 'silu');
        t.same(vc.fullatt_block_indexes, [1, 3]);
        t.ok(vc.fullatt_block_indexes.every((i: number) => i >= 0 && i < vc.depth), 'fullatt_block_indexes lie within depth');
      }
      await checkCheckpoint(t, ck, 1);
    }
  }
});

t.test('LLaVA-OneVision config.json: llava-hf fields, SigLIP vision_config, Qwen2 text_config', async (t) => {
  const root = t.testdir();
  const ck = await writeTinyCheckpoint(join(root, 'ck'), { architecture: 'llava_onevision' });
  const c = ck.config as Json;
  t.same(c.architectures, ['LlavaOnevisionForConditionalGeneration']);
  t.equal(c.model_type, 'llava_onevision');
  t.equal(c.text_config.model_type, 'qwen2');
  t.equal(c.vision_config.model_type, 'siglip_vision_model');
  t.equal(c.vision_config.patch_size, 14);
  t.equal(c.vision_config.image_size, 28);
  t.equal(c.vision_config.layer_norm_eps, 1e-6);
  t.equal(c.vision_config.vision_use_head, false);
  t.equal(c.vision_feature_layer, -1);
  t.equal(c.vision_feature_select_strategy, 'full');
  t.equal(c.vision_aspect_ratio, 'anyres_max_9');
  t.equal(c.projector_hidden_act, 'gelu');
  t.ok(Array.isArray(c.image_grid_pinpoints) && c.image_grid_pinpoints.every((p: number[]) => p.length === 2 && p.every((x) => x % 28 === 0)), 'pinpoints are multiples of image_size');
  t.same(ck.tensors.get('vision_tower.vision_model.embeddings.position_embedding.weight')?.shape, [4, 32], '28/14 = 2 → 4 patches');
  t.equal(c.image_token_index, ck.specialTokens['<image>']);
  t.equal(c.video_token_index, ck.specialTokens['<video>']);
  const noPost = await writeTinyCheckpoint(join(root, 'nopost'), { architecture: 'llava_onevision', vision: { postLayernorm: false } });
  t.notOk(noPost.tensors.has('vision_tower.vision_model.post_layernorm.weight'), 'post_layernorm can be left out');
});

t.test('same seed gives byte-identical files; another seed changes every weight file but no config', async (t) => {
  const root = t.testdir();
  for (const architecture of ARCHITECTURES) {
    const options: TinyCheckpointOptions = { architecture, shards: 2, seed: 11 };
    const a = await writeTinyCheckpoint(join(root, `${architecture}-a`), options);
    const b = await writeTinyCheckpoint(join(root, `${architecture}-b`), options);
    const c = await writeTinyCheckpoint(join(root, `${architecture}-c`), { ...options, seed: 12 });
    t.same(a.files, b.files);
    for (const file of a.files) {
      const [x, y, z] = await Promise.all([a, b, c].map((ck) => readFile(join(ck.dir, file))));
      t.ok(x.equals(y), `${architecture} ${file}: identical for the same seed`);
      if (file.endsWith('.safetensors')) t.notOk(x.equals(z), `${architecture} ${file}: differs for another seed`);
      else t.ok(x.equals(z), `${architecture} ${file}: no weights, same for another seed`);
    }
    const name = `${a.prefixes.text}layers.1.mlp.up_proj.weight`;
    const [wa, wc] = await Promise.all([a, c].map(async (ck) => (await loadSafetensors(join(ck.dir, ck.tensors.get(name)!.file))).tensors.get(name)!));
    const va = toFloat32(wa);
    const vc = toFloat32(wc);
    let same = 0;
    for (let i = 0; i < va.length; i++) if (va[i] === vc[i]) same++;
    t.ok(same < va.length / 10, `${name}: values differ between seeds (${same} of ${va.length} equal)`);
  }
});

t.test("a tensor's values depend on the seed and its name only, not on sharding or layout position", async (t) => {
  const root = t.testdir();
  const one = await writeTinyCheckpoint(join(root, 'one'), { architecture: 'qwen2_5_vl', seed: 3 });
  const four = await writeTinyCheckpoint(join(root, 'four'), { architecture: 'qwen2_5_vl', seed: 3, shards: 4 });
  const whole = (await loadSafetensors(join(one.dir, 'model.safetensors'))).tensors;
  let checked = 0;
  for (const file of four.shardFiles) {
    for (const [name, tensor] of (await loadSafetensors(join(four.dir, file))).tensors) {
      const ref = whole.get(name)!;
      t.ok(Buffer.from(ref.data.buffer, ref.data.byteOffset, ref.data.byteLength).equals(Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength)), `${name} identical`);
      checked++;
    }
  }
  t.equal(checked, whole.size);
});

t.test('special tokens: ids < vocab, the same in config.json, tokenizer.json, tokenizer_config.json and generation_config.json', async (t) => {
  const root = t.testdir();
  for (const architecture of ARCHITECTURES) {
    const ck = await writeTinyCheckpoint(join(root, architecture), { architecture });
    const config = ck.config as Json;
    const tc = textConfig(config, architecture);
    const vocab: number = tc.vocab_size;
    const tokenizer = await readJson(join(ck.dir, 'tokenizer.json'));
    const tokenizerConfig = await readJson(join(ck.dir, 'tokenizer_config.json'));
    const generation = await readJson(join(ck.dir, 'generation_config.json'));
    const chat = await readJson(join(ck.dir, 'chat_template.json'));
    const tok = ck.specialTokens;

    const expectedSpecials = architecture === 'llava_onevision'
      ? ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<image>', '<video>']
      : ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>', '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>', '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>'];
    t.same(Object.keys(tok), expectedSpecials, `${architecture}: the special tokens of §3.8 / §4.1`);
    const ids = Object.values(tok);
    t.same(ids, ids.map((_, i) => ids[0] + i), 'consecutive ids in the real order (relative offsets as in the real vocabulary)');
    t.ok(ids.every((id) => id < vocab), 'every special id < vocab_size');

    // tokenizer.json: dense regular vocabulary below the specials; merges build tokens from tokens.
    const model = tokenizer.model;
    t.equal(model.type, 'BPE');
    const vocabIds = Object.values(model.vocab as Record<string, number>).sort((a, b) => a - b);
    t.same(vocabIds, vocabIds.map((_, i) => i), 'regular ids are 0 … R-1');
    t.equal(vocabIds.length, ids[0], 'special tokens follow the regular vocabulary directly');
    for (const merge of model.merges as string[]) {
      const [x, y] = merge.split(' ');
      if (!(x in model.vocab && y in model.vocab && x + y in model.vocab)) t.fail(`merge '${merge}' refers to a token outside the vocabulary`);
    }
    t.ok(model.merges.length > 0, 'the tokenizer has merges');
    t.same(tokenizer.added_tokens.map((a: Json) => [a.content, a.id, a.special]), expectedSpecials.map((s) => [s, tok[s], true]), 'added_tokens');
    t.same(Object.entries(tokenizerConfig.added_tokens_decoder).map(([id, a]: [string, Json]) => [Number(id), a.content]), expectedSpecials.map((s) => [tok[s], s]), 'added_tokens_decoder');
    t.equal(tokenizerConfig.eos_token, '<|im_end|>');
    t.equal(tokenizerConfig.pad_token, '<|endoftext|>');
    t.equal(tokenizerConfig.chat_template, chat.chat_template, 'chat_template.json and tokenizer_config agree');

    t.equal(tc.bos_token_id, tok['<|endoftext|>']);
    t.equal(tc.eos_token_id, tok['<|im_end|>']);
    t.same(generation.eos_token_id, [tok['<|im_end|>'], tok['<|endoftext|>']]);
    t.equal(generation.pad_token_id, tok['<|endoftext|>']);
    if (architecture === 'llava_onevision') {
      t.match(chat.chat_template, /<image>\\n/);
    } else {
      t.equal(config.image_token_id, tok['<|image_pad|>']);
      t.equal(config.video_token_id, tok['<|video_pad|>']);
      t.equal(config.vision_start_token_id, tok['<|vision_start|>']);
      t.equal(config.vision_end_token_id, tok['<|vision_end|>']);
      t.equal(config.vision_token_id, tok['<|vision_pad|>']);
      t.equal(ids[12] - ids[0], 151655 - 151643, '<|image_pad|> sits where it does relative to <|endoftext|> in the real vocabulary');
      t.match(chat.chat_template, /<\|vision_start\|><\|image_pad\|><\|vision_end\|>/);
      const pre = await readJson(join(ck.dir, 'preprocessor_config.json'));
      t.equal(pre.patch_size, config.vision_config.patch_size);
      t.equal(pre.merge_size, config.vision_config.spatial_merge_size);
      t.equal(pre.temporal_patch_size, config.vision_config.temporal_patch_size);
      t.equal(pre.min_pixels, 3136);
      t.equal(pre.max_pixels, 12845056);
    }
  }
});

t.test('extraFiles: false writes only config.json and the weights', async (t) => {
  const ck = await writeTinyCheckpoint(t.testdir(), { architecture: 'qwen2_vl', extraFiles: false, shards: 2 });
  t.same(ck.files, ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', INDEX_FILE].sort());
});

t.test('options that cannot make a valid model are refused', async (t) => {
  const dir = t.testdir();
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'qwen2_vl', hidden: 60, heads: 8 }), /head_dim|multiple/);
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'qwen2_vl', heads: 4, kvHeads: 3 }), /kvHeads/);
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'qwen2_vl', hidden: 12, heads: 4 }), /head_dim/);
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'qwen2_5_vl', vision: { depth: 2, fullattBlockIndexes: [2] } }), /fullattBlockIndexes/);
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'llava_onevision', vision: { imageSize: 30 } }), /imageSize/);
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'qwen2_vl', vocab: 64 }), /vocab/);
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'qwen2_vl', shards: 1000 }), /shards/);
  await t.rejects(writeTinyCheckpoint(dir, { architecture: 'gemma3' as Architecture }), /architecture/);
});

t.test('larger dimensions scale every shape consistently', async (t) => {
  const root = t.testdir();
  for (const architecture of ARCHITECTURES) {
    const ck = await writeTinyCheckpoint(join(root, architecture), {
      architecture, layers: 3, hidden: 96, intermediate: 160, heads: 6, kvHeads: 3, vocab: 320, tieWordEmbeddings: false,
      vision: { depth: 3, width: 48, heads: 3, intermediate: 80, imageSize: 42 }, shards: 5, dtype: 'F16',
    });
    const tc = textConfig(ck.config as Json, architecture);
    if (architecture !== 'llava_onevision') t.equal(tc.rope_scaling.mrope_section.reduce((a: number, b: number) => a + b, 0), 8, 'head_dim 16 → mrope sums to 8');
    await checkCheckpoint(t, ck, 5);
  }
});

// --- corruptions ------------------------------------------------------------------------------

/** A fresh checkpoint to break. (t.testdir() empties the folder on every call: call it once per test.) */
async function fresh(dir: string, architecture: Architecture, shards: number, layout: Layout = 'original') {
  return writeTinyCheckpoint(dir, { architecture, shards, layout, seed: 5 });
}

t.test('corruptCheckpoint does what each kind says', async (t) => {
  t.test('missing-tensor removes the tensor from its shard and from the index', async (t) => {
    const root = t.testdir();
    for (const shards of [1, 3]) {
      const ck = await fresh(join(root, String(shards)), 'qwen2_vl', shards);
      const c = await corruptCheckpoint(ck.dir, 'missing-tensor');
      t.equal(c.tensor, 'model.layers.0.self_attn.q_proj.weight');
      t.equal(c.file, ck.tensors.get(c.tensor!)!.file);
      const { found } = await tensorsOnDisk(ck.dir, ck.shardFiles);
      t.notOk(found.has(c.tensor!), 'gone from the shards');
      t.equal(found.size, ck.tensors.size - 1, 'nothing else removed');
      if (shards > 1) {
        const index = await readJson(join(ck.dir, INDEX_FILE));
        t.notOk(c.tensor! in index.weight_map, 'gone from the index');
        t.equal(index.metadata.total_size, [...found.values()].reduce((a, x) => a + x.byteLength, 0), 'total_size still consistent');
      }
    }
  });

  t.test('wrong-shape stores a transposed shape with the same bytes', async (t) => {
    const root = t.testdir();
    const ck = await fresh(join(root, 'ck'), 'llava_onevision', 2, 'transformers-4.52');
    const c = await corruptCheckpoint(ck.dir, 'wrong-shape');
    t.equal(c.tensor, 'model.language_model.layers.0.mlp.down_proj.weight');
    const { found } = await tensorsOnDisk(ck.dir, ck.shardFiles);
    t.same(found.get(c.tensor!)!.shape, [...ck.tensors.get(c.tensor!)!.shape].reverse());
    t.same(found.get(c.tensor!)!.shape, [128, 64]);
    const d = await corruptCheckpoint(ck.dir, 'wrong-shape', { tensor: 'model.language_model.norm.weight' });
    t.same((await tensorsOnDisk(ck.dir, ck.shardFiles)).found.get(d.tensor!)!.shape, [65], '1-D tensor: first dimension + 1');
    const index = await readJson(join(ck.dir, INDEX_FILE));
    t.equal(index.metadata.total_size, [...(await tensorsOnDisk(ck.dir, ck.shardFiles)).found.values()].reduce((a, x) => a + x.byteLength, 0));
  });

  t.test('bad-dtype stores an integer dtype with the same shape', async (t) => {
    const root = t.testdir();
    const ck = await fresh(join(root, 'ck'), 'qwen2_5_vl', 1, 'transformers-4.52');
    const c = await corruptCheckpoint(ck.dir, 'bad-dtype');
    t.equal(c.tensor, 'model.language_model.layers.0.self_attn.k_proj.weight');
    const info = (await tensorsOnDisk(ck.dir, ck.shardFiles)).found.get(c.tensor!)!;
    t.equal(info.dtype, 'I16');
    t.same(info.shape, ck.tensors.get(c.tensor!)!.shape);
    const d = await corruptCheckpoint(ck.dir, 'bad-dtype', { tensor: 'model.language_model.norm.weight', dtype: 'U8' });
    t.equal((await tensorsOnDisk(ck.dir, ck.shardFiles)).found.get(d.tensor!)!.dtype, 'U8');
  });

  t.test('missing-shard deletes a shard the index still names', async (t) => {
    const root = t.testdir();
    const ck = await fresh(join(root, 'ck'), 'qwen2_vl', 3);
    const c = await corruptCheckpoint(ck.dir, 'missing-shard');
    t.equal(c.file, 'model-00003-of-00003.safetensors');
    await t.rejects(stat(join(ck.dir, c.file)), { code: 'ENOENT' });
    const index = await readJson(join(ck.dir, INDEX_FILE));
    t.ok(Object.values(index.weight_map).includes(c.file), 'the index still points at it');
    const d = await corruptCheckpoint(ck.dir, 'missing-shard', { shard: 1 });
    t.equal(d.file, 'model-00001-of-00003.safetensors');
    const single = await fresh(join(root, 'single'), 'qwen2_vl', 1);
    t.equal((await corruptCheckpoint(single.dir, 'missing-shard')).file, 'model.safetensors');
    await t.rejects(stat(join(single.dir, 'model.safetensors')), { code: 'ENOENT' });
  });

  t.test('bad-config-json leaves config.json unparsable', async (t) => {
    const root = t.testdir();
    const ck = await fresh(join(root, 'ck'), 'llava_onevision', 1);
    const c = await corruptCheckpoint(ck.dir, 'bad-config-json');
    t.equal(c.file, 'config.json');
    const text = await readFile(join(ck.dir, 'config.json'), 'utf8');
    t.throws(() => JSON.parse(text));
  });

  t.test('unknown-architecture names an architecture vlmq does not support', async (t) => {
    const root = t.testdir();
    const ck = await fresh(join(root, 'ck'), 'qwen2_vl', 1);
    await corruptCheckpoint(ck.dir, 'unknown-architecture');
    const config = await readJson(join(ck.dir, 'config.json'));
    t.same(config.architectures, ['MllamaForConditionalGeneration']);
    t.equal(config.model_type, 'mllama');
    t.equal(config.hidden_size, 64, 'the rest of the config is untouched');
    await corruptCheckpoint(ck.dir, 'unknown-architecture', { architecture: 'FooForCausalLM', modelType: 'foo' });
    t.same((await readJson(join(ck.dir, 'config.json'))).architectures, ['FooForCausalLM']);
  });

  t.test('index-points-to-missing-tensor keeps the index entry but not the tensor', async (t) => {
    const root = t.testdir();
    const ck = await fresh(join(root, 'ck'), 'llava_onevision', 3);
    const c = await corruptCheckpoint(ck.dir, 'index-points-to-missing-tensor');
    t.equal(c.tensor, 'language_model.model.layers.0.self_attn.v_proj.weight');
    const index = await readJson(join(ck.dir, INDEX_FILE));
    t.equal(index.weight_map[c.tensor!], c.file, 'the index still maps it');
    const header = await readSafetensorsHeader(join(ck.dir, c.file));
    t.notOk(header.tensors.has(c.tensor!), 'the shard does not hold it');
    const single = await fresh(join(root, 'single'), 'qwen2_vl', 1);
    await t.rejects(corruptCheckpoint(single.dir, 'index-points-to-missing-tensor'), /sharded/);
  });

  t.test('inconsistent-config changes a text field everywhere it appears, not the tensors', async (t) => {
    const root = t.testdir();
    const ck = await writeTinyCheckpoint(join(root, 'ck'), { architecture: 'qwen2_vl', layout: 'transformers-4.52', nestedTextConfig: 'both' });
    const c = await corruptCheckpoint(ck.dir, 'inconsistent-config');
    t.equal(c.field, 'intermediate_size');
    const config = await readJson(join(ck.dir, 'config.json'));
    t.equal(config.intermediate_size, 256);
    t.equal(config.text_config.intermediate_size, 256);
    t.same(ck.tensors.get('model.language_model.layers.0.mlp.gate_proj.weight')!.shape, [128, 64], 'tensors still say 128');
    const expected = expectedShapes(config, 'qwen2_vl', 'transformers-4.52').get('model.language_model.layers.0.mlp.gate_proj.weight');
    t.not(JSON.stringify(expected), JSON.stringify([128, 64]), 'config and tensors now disagree');
    const llava = await fresh(join(root, 'llava'), 'llava_onevision', 1);
    await corruptCheckpoint(llava.dir, 'inconsistent-config', { field: 'num_key_value_heads', value: 4 });
    t.equal((await readJson(join(llava.dir, 'config.json'))).text_config.num_key_value_heads, 4);
  });

  t.test('every kind is covered above', async (t) => {
    t.same([...CORRUPTION_KINDS].sort(), ['bad-config-json', 'bad-dtype', 'inconsistent-config', 'index-points-to-missing-tensor', 'missing-shard', 'missing-tensor', 'unknown-architecture', 'wrong-shape']);
  });
});
