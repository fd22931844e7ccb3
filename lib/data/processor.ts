// The text side of a Hugging Face processor, without Python: the checkpoint's tokenizer.json
// (@huggingface/tokenizers), its chat template (@huggingface/jinja) and the expansion of each image
// placeholder to the number of tokens its image gets (docs/formats.md §3.8, §4.2).
//
// A calibration conversation is rendered as MBQ does it (formats.md §5.1): a user turn with the
// images and then the prompt, and an assistant turn with the answer; no generation prompt. Qwen
// templates add the default system turn themselves; LLaVA-OneVision's add none.
//
// The template is the checkpoint's code: it renders in a worker thread within bounds of time,
// memory and output (template-renderer.ts), so render() and conversationIds() are async. Every
// file is read as a regular file only: a FIFO or a device in the checkpoint is refused, not read.
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { VlmqError, invalidParameterError } from '../errors.js';
import { readOptionalJson } from '../io/checkpoint.js';
import { readRegularFile, regularFileSize } from '../io/files.js';
import { LLAVA_OV_CHAT_TEMPLATE, QWEN_VL_CHAT_TEMPLATE } from '../models/chat-templates.js';
import type { Model } from '../models/model.js';
import { type RenderFailure, type TemplateLimits, renderTemplate } from './template-renderer.js';

/**
 * The documented templates (formats.md §3.8 and §4.2), used only when a checkpoint carries no
 * chat template of its own (none in chat_template.json, chat_template.jinja or tokenizer_config.json).
 */
export const FALLBACK_TEMPLATES = { qwen: QWEN_VL_CHAT_TEMPLATE, llava: LLAVA_OV_CHAT_TEMPLATE } as const;

/** The image placeholder each family's processor writes, unless tokenizer_config.json names another. */
const IMAGE_PLACEHOLDERS = { qwen: '<|image_pad|>', llava: '<image>' } as const;

export interface Conversation {
  /** Images in the user turn, before the prompt. */
  images: number;
  prompt: string;
  answer: string;
}

export interface TextProcessorOptions {
  /**
   * Bounds on rendering the chat template, which is code from the checkpoint: time (default 10 s)
   * and output length (default 1 Mi characters beyond the conversation's text); the heap is bounded
   * at TEMPLATE_HEAP_LIMIT_MB. A render past a bound is an error naming the template's file.
   */
  templateLimits?: TemplateLimits;
}

/** What identifies the image placeholder: config.json's id, the field it is in, the string the template writes. */
interface ImageToken {
  id: number;
  field: string;
  placeholder: string;
}

export class TextProcessor {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly templateText: string,
    /** Where the template came from, for messages ("chat_template.json", "fallback (formats.md §3.8)"). */
    readonly templateSource: string,
    private readonly image: ImageToken,
    private readonly dir: string,
    private readonly limits: TemplateLimits,
  ) {}

  /** The id of the image placeholder (`<|image_pad|>` or `<image>`), from config.json. */
  get imageTokenId(): number {
    return this.image.id;
  }

  /** The tokenizer and chat template of `model`'s directory. */
  static async load(model: Model, options: TextProcessorOptions = {}): Promise<TextProcessor> {
    const limits = checkTemplateLimits(options.templateLimits ?? {});
    const dir = model.dir;
    const family = model.architecture.id === 'llava_onevision' ? 'llava' : 'qwen';
    const tokenizerJson = await readOptionalJson(join(dir, 'tokenizer.json'));
    if (tokenizerJson === null) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, 'tokenizer.json')}: missing; vlmq needs the checkpoint's tokenizer to calibrate on text`);
    const tokenizerConfig = (await readOptionalJson(join(dir, 'tokenizer_config.json'))) ?? {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, 'tokenizer.json')}: not a tokenizer the tokenizers library reads (${(error as Error).message})`, { cause: error });
    }
    const { text, source } = await chatTemplate(dir, tokenizerConfig, family);
    try {
      new Template(text); // parsing runs none of the template's code: checked here, so a broken template fails at load
    } catch (error) {
      throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, source)}: the chat template does not parse (${(error as Error).message})`, { cause: error });
    }
    const field = family === 'llava' ? 'image_token_index' : 'image_token_id';
    const imageTokenId = model.config.tokens[field];
    if (imageTokenId === undefined) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, 'config.json')}: no ${field}; vlmq needs it to place image features`);
    const image = { id: imageTokenId, field, placeholder: imagePlaceholder(tokenizerConfig, family) };
    return new TextProcessor(tokenizer, text, source, image, dir, limits);
  }

  /** The conversation as the chat template writes it (rendered off this thread, within the template limits). */
  async render(conversation: Conversation): Promise<string> {
    const user = [...Array.from({ length: conversation.images }, () => ({ type: 'image' })), { type: 'text', text: conversation.prompt }];
    const messages = [{ role: 'user', content: user }, { role: 'assistant', content: [{ type: 'text', text: conversation.answer }] }];
    const textLength = conversation.prompt.length + conversation.answer.length;
    const result = await renderTemplate(this.templateText, { messages, add_generation_prompt: false }, textLength, this.limits);
    if (!result.ok) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${this.templateLocation}: ${describeRenderFailure(result.failure)}`);
    return result.text;
  }

  /** Token ids of `text` (special tokens in it are recognised; none are added). */
  encode(text: string): Int32Array {
    return Int32Array.from(this.tokenizer.encode(text, { add_special_tokens: false }).ids);
  }

  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: false });
  }

  /**
   * The token ids of a conversation whose images get `imageTokens[i]` tokens each: every image
   * placeholder the template wrote becomes that many copies of it, as the processors do before
   * tokenizing (`replace_image_token`, `_expand_image_tokens`).
   */
  async conversationIds(conversation: Conversation, imageTokens: readonly number[], label: string): Promise<Int32Array> {
    const text = await this.render(conversation);
    const ids = this.encode(text);
    const imageId = this.image.id;
    const placeholders = ids.reduce((n, id) => n + (id === imageId ? 1 : 0), 0);
    if (placeholders !== imageTokens.length) throw this.placeholderError(text, placeholders, imageTokens.length, label);
    const out = new Int32Array(ids.length - placeholders + imageTokens.reduce((a, b) => a + b, 0));
    let o = 0, image = 0;
    for (const id of ids) {
      if (id !== imageId) out[o++] = id;
      else out.fill(id, o, (o += imageTokens[image++]));
    }
    return out;
  }

  /**
   * Why a rendered conversation has the wrong number of image tokens: the template wrote the
   * placeholder once per image but config.json's id is not the tokenizer's id for it (a config
   * problem), or the template wrote too few or too many placeholders (a template problem).
   */
  private placeholderError(text: string, found: number, images: number, label: string): VlmqError {
    const { id, field, placeholder } = this.image;
    const written = text.split(placeholder).length - 1;
    const tokenizerId = this.tokenizer.token_to_id(placeholder);
    if (written === images && tokenizerId !== id) {
      const tokenizer = join(this.dir, 'tokenizer.json');
      const theirs = tokenizerId === undefined ? `${tokenizer} has no token ${JSON.stringify(placeholder)}` : `${tokenizer} gives ${JSON.stringify(placeholder)} the id ${tokenizerId}`;
      return new VlmqError('ERR_VLMQ_BAD_FILE',
        `${join(this.dir, 'config.json')}: ${field} ${id} does not match the tokenizer's id for the image placeholder ${JSON.stringify(placeholder)}: ${theirs} ` +
        `(in ${label} the chat template wrote ${written} placeholder(s) for ${images} image(s), which do not tokenize to ${id})`);
    }
    return new VlmqError('ERR_VLMQ_BAD_FILE', `${label}: the chat template wrote ${found} image placeholder(s) for ${images} image(s) (template: ${this.templateSource})`);
  }

  /** The template's file for messages (or the description of the fallback template). */
  private get templateLocation(): string {
    return /\.(json|jinja)$/.test(this.templateSource) ? join(this.dir, this.templateSource) : this.templateSource;
  }
}

/** "rendering the chat template exceeded 10 s (...)" and the like, after the template's file name. */
function describeRenderFailure(failure: RenderFailure): string {
  switch (failure.kind) {
    case 'error': return `rendering the chat template failed (${failure.message})`;
    case 'time': return `rendering the chat template exceeded ${failure.limitMs / 1000} s (a loop over a huge range, or one without end?); vlmq stops a template after that long`;
    case 'memory': return `rendering the chat template exceeded ${failure.limitMb} MB of memory (a loop over a huge range?); vlmq stops a template there`;
    case 'output': {
      const wrote = failure.length === null ? "more than JavaScript's longest string" : `${failure.length} characters`;
      return `rendering the chat template exceeded ${failure.limit} characters of output (it wrote ${wrote}; a conversation with its markup is far shorter)`;
    }
  }
}

function checkTemplateLimits(limits: TemplateLimits): TemplateLimits {
  const { timeMs, outputChars } = limits;
  if (timeMs !== undefined && !(Number.isFinite(timeMs) && timeMs > 0)) throw invalidParameterError('templateLimits.timeMs', 'a positive number of milliseconds', timeMs);
  if (outputChars !== undefined && !(Number.isSafeInteger(outputChars) && outputChars > 0)) throw invalidParameterError('templateLimits.outputChars', 'a positive integer', outputChars);
  return { ...limits };
}

/** The placeholder string: tokenizer_config.json's image_token (as transformers' processors read it), else the family's. */
function imagePlaceholder(tokenizerConfig: Record<string, unknown>, family: keyof typeof IMAGE_PLACEHOLDERS): string {
  const extra = tokenizerConfig.extra_special_tokens as Record<string, unknown> | undefined;
  for (const value of [tokenizerConfig.image_token, extra?.image_token]) if (typeof value === 'string' && value !== '') return value;
  return IMAGE_PLACEHOLDERS[family];
}

/** A text file of the checkpoint, null when absent; anything but a regular file is refused by kind. */
export async function readOptionalCheckpointText(path: string): Promise<string | null> {
  if ((await regularFileSize(path)) === null) return null;
  return readRegularFile(path, 'file', 'utf8');
}

/** The checkpoint's chat template: chat_template.json, chat_template.jinja, then tokenizer_config.json; else the documented one. */
async function chatTemplate(dir: string, tokenizerConfig: Record<string, unknown>, family: keyof typeof FALLBACK_TEMPLATES): Promise<{ text: string; source: string }> {
  const json = await readOptionalJson(join(dir, 'chat_template.json'));
  if (typeof json?.chat_template === 'string') return { text: json.chat_template, source: 'chat_template.json' };
  const jinja = await readOptionalCheckpointText(join(dir, 'chat_template.jinja'));
  if (jinja !== null) return { text: jinja, source: 'chat_template.jinja' };
  if (typeof tokenizerConfig.chat_template === 'string') return { text: tokenizerConfig.chat_template, source: 'tokenizer_config.json' };
  return { text: FALLBACK_TEMPLATES[family], source: `vlmq's fallback template (docs/formats.md ${family === 'qwen' ? '§3.8' : '§4.2'})` };
}
