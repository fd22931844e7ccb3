// A tiny but well-formed Hugging Face `tokenizer.json` (byte-level BPE, the kind Qwen2 ships) plus
// the special tokens of Qwen2-VL / Qwen2.5-VL (docs/formats.md §3.8) and LLaVA-OneVision (§4.1).
//
// The real models put their special tokens right after the ~151k BPE tokens (151643 …) and pad the
// embedding past them. A tiny vocabulary cannot use those ids, so this file keeps the same *shape*
// of the id space at small scale: regular BPE tokens 0 … R-1, the special tokens at R, R+1, … in the
// real order (so `<|image_pad|>` − `<|endoftext|>` = 12 as 151655 − 151643), and unused embedding
// rows after them. Every id is < vocab_size.
//
// The base alphabet is the byte-level image of tab, newline and printable ASCII (97 symbols) rather
// than all 256 bytes, so that it fits a 256-row embedding with room for merges and specials; text
// outside that alphabet has no token (tokenizers drops it), which tests of calibration text must avoid.

/** One special token as tokenizer.json's `added_tokens` lists it. */
export interface SpecialToken {
  id: number;
  content: string;
}

/** Special tokens of Qwen2-VL / Qwen2.5-VL, in id order (real ids 151643 … 151656, §3.8). */
export const QWEN_VL_SPECIALS = [
  '<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|object_ref_start|>', '<|object_ref_end|>',
  '<|box_start|>', '<|box_end|>', '<|quad_start|>', '<|quad_end|>', '<|vision_start|>',
  '<|vision_end|>', '<|vision_pad|>', '<|image_pad|>', '<|video_pad|>',
] as const;

/** Special tokens of LLaVA-OneVision (llava-hf, Qwen2 tokenizer + two added tokens: real ids 151643 … 151647, §4.1). */
export const LLAVA_OV_SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<image>', '<video>'] as const;

/** Embedding rows left unused after the special tokens, like the real models' padded vocabularies. */
export const UNUSED_TAIL_ROWS = 16;

/** Byte values of the base alphabet: tab, newline, space and printable ASCII. */
const BASE_BYTES = [9, 10, ...Array.from({ length: 126 - 32 + 1 }, (_, i) => 32 + i)];

/**
 * Merges in rank order; each part must already be a token when its merge is reached. `Ġ` is the
 * byte-level image of a space. Enough common English pairs for real merges to happen on test text.
 */
const MERGES: ReadonlyArray<readonly [string, string]> = [
  ['Ġ', 't'], ['h', 'e'], ['i', 'n'], ['r', 'e'], ['o', 'n'], ['Ġt', 'he'], ['e', 'r'], ['Ġ', 'a'],
  ['a', 't'], ['e', 'n'], ['o', 'r'], ['Ġ', 's'], ['e', 's'], ['Ġ', 'w'], ['i', 's'], ['Ġ', 'o'],
  ['Ġ', 'c'], ['i', 't'], ['Ġ', 'i'], ['a', 'n'], ['a', 'l'], ['a', 'r'], ['Ġ', 'b'], ['Ġ', 'f'],
  ['Ġ', 'p'], ['in', 'g'], ['Ġ', 'm'], ['e', 'd'], ['o', 'u'], ['Ġo', 'f'], ['Ġ', 'd'], ['l', 'e'],
  ['Ġa', 'n'], ['Ġan', 'd'], ['Ġ', 'h'], ['i', 'c'], ['Ġ', 'is'], ['Ġ', 'in'], ['Ġ', 'l'], ['Ġ', 'y'],
  ['Ċ', 'Ċ'], ['Ġ', 'Ġ'], ['s', 't'], ['a', 'g'], ['ag', 'e'], ['i', 'm'], ['Ġ', 'im'], ['Ġim', 'age'],
  ['Ġ', 'T'], ['Ġ', 'A'],
];

/** Qwen2's pre-tokenizer split pattern (a regex over letters, digits, punctuation and whitespace runs). */
const QWEN2_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** GPT-2's reversible byte → printable character map that byte-level BPE vocabularies are written in. */
export function byteToUnicode(): Map<number, string> {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const map = new Map<number, string>();
  let next = 0;
  for (let b = 0; b < 256; b++) {
    if (printable(b)) map.set(b, String.fromCodePoint(b));
    else map.set(b, String.fromCodePoint(256 + next++));
  }
  return map;
}

/** The regular (non-special) vocabulary that fits `vocab` rows together with `specialCount` specials. */
export function regularVocabulary(vocab: number, specialCount: number): { tokens: string[]; merges: string[] } {
  const bytes = byteToUnicode();
  const tokens = BASE_BYTES.map((b) => bytes.get(b)!);
  const room = vocab - UNUSED_TAIL_ROWS - specialCount - tokens.length;
  if (room < 1) {
    throw new RangeError(`vocab ${vocab} is too small for a byte-level tokenizer: need at least ${tokens.length + specialCount + UNUSED_TAIL_ROWS + 1} rows`);
  }
  const known = new Set(tokens);
  const merges: string[] = [];
  for (const [a, b] of MERGES.slice(0, room)) {
    if (!known.has(a) || !known.has(b)) throw new Error(`tokenizer fixture: merge '${a} ${b}' uses a token not yet in the vocabulary`);
    if (known.has(a + b)) throw new Error(`tokenizer fixture: merge '${a} ${b}' makes a token twice`);
    merges.push(`${a} ${b}`);
    tokens.push(a + b);
    known.add(a + b);
  }
  return { tokens, merges };
}

/** Ids of `specials`: right after the regular tokens, in order (see the header comment). */
export function specialTokenIds(vocab: number, specials: readonly string[]): SpecialToken[] {
  const { tokens } = regularVocabulary(vocab, specials.length);
  return specials.map((content, i) => ({ id: tokens.length + i, content }));
}

/** The tokenizer.json object: byte-level BPE with Qwen2's pre-tokenizer, and the specials as added tokens. */
export function tokenizerJson(vocab: number, specials: readonly string[]): Record<string, unknown> {
  const { tokens, merges } = regularVocabulary(vocab, specials.length);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialTokenIds(vocab, specials).map(({ id, content }) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((token, id) => [token, id])),
      merges,
    },
  };
}

/** `added_tokens_decoder` of tokenizer_config.json: id (as a string key) → token properties. */
export function addedTokensDecoder(vocab: number, specials: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(specialTokenIds(vocab, specials).map(({ id, content }) => [
    String(id),
    { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
  ]));
}

export { LLAVA_OV_CHAT_TEMPLATE, QWEN_VL_CHAT_TEMPLATE } from '../models/chat-templates.js';
