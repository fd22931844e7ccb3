// What Qwen2-VL and Qwen2.5-VL share: tensor layouts, config reading of the language model and
// of the vision tower's common fields (docs/formats.md §3.1–§3.3).
import { ConfigReader, type Json, tokenIds } from './config-fields.js';
import { parseTextConfig, textFields } from './decoder.js';
import type { LanguagePrefixes, TensorLayout, TextConfig } from './types.js';

export const QWEN_TOKEN_FIELDS = [
  'image_token_id', 'video_token_id', 'vision_start_token_id', 'vision_end_token_id', 'vision_token_id',
  'bos_token_id', 'eos_token_id',
] as const;

export function qwenLayout(names: ReadonlySet<string>): TensorLayout {
  for (const name of names) if (name.startsWith('model.language_model.')) return 'transformers-4.52';
  return 'original';
}

export function qwenLanguagePrefixes(layout: TensorLayout): LanguagePrefixes {
  const lm = layout === 'original' ? 'model' : 'model.language_model';
  return { layers: `${lm}.layers`, embedTokens: `${lm}.embed_tokens`, norm: `${lm}.norm`, lmHead: 'lm_head' };
}

export function qwenVisionPrefix(layout: TensorLayout): string {
  return layout === 'original' ? 'visual' : 'model.visual';
}

export function qwenText(raw: Json, file: string): { top: ConfigReader; text: TextConfig; tokens: Record<string, number> } {
  const top = new ConfigReader(file, '', raw);
  const text = parseTextConfig(textFields(top, raw), { mrope: true, tieDefault: false });
  return { top, text, tokens: tokenIds(top, QWEN_TOKEN_FIELDS) };
}
