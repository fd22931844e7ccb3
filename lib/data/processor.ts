// The text side of a Hugging Face processor, without Python: the checkpoint's tokenizer.json
// (@huggingface/tokenizers), its chat template (@huggingface/jinja) and the expansion of each image
// placeholder to the number of tokens its image gets (docs/formats.md §3.8, §4.2).
//
// A calibration conversation is rendered as MBQ does it (formats.md §5.1): a user turn with the
// images and then the prompt, and an assistant turn with the answer; no generation prompt. Qwen
// templates add the default system turn themselves; LLaVA-OneVision's add none.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { VlmqError } from '../errors.js';
import { readOptionalJson } from '../json.js';
import { LLAVA_OV_CHAT_TEMPLATE, QWEN_VL_CHAT_TEMPLATE } from '../models/chat-templates.js';
import type { Model } from '../models/model.js';

/**
 * The documented templates (formats.md §3.8 and §4.2), used only when a checkpoint carries no
 * chat template of its own (none in chat_template.json, chat_template.jinja or tokenizer_config.json).
 */
export const FALLBACK_TEMPLATES = { qwen: QWEN_VL_CHAT_TEMPLATE, llava: LLAVA_OV_CHAT_TEMPLATE } as const;

export interface Conversation {
  /** Images in the user turn, before the prompt. */
  images: number;
  prompt: string;
  answer: string;
}

export class TextProcessor {
  private constructor(
    private readonly tokenizer: Tokenizer,
    private readonly template: Template,
    /** Where the template came from, for messages ("chat_template.json", "fallback (formats.md §3.8)"). */
    readonly templateSource: string,
    /** The id of the image placeholder (`<|image_pad|>` or `<image>`). */
    readonly imageTokenId: number,
    private readonly dir: string,
  ) {}

  /** The tokenizer and chat template of `model`'s directory. */
  static async load(model: Model): Promise<TextProcessor> {
    const dir = model.dir;
    const tokenizerJson = await readOptionalJson(join(dir, 'tokenizer.json'));
    if (tokenizerJson === null) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, 'tokenizer.json')}: missing; vlmq needs the checkpoint's tokenizer to calibrate on text`);
    const tokenizerConfig = (await readOptionalJson(join(dir, 'tokenizer_config.json'))) ?? {};
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, 'tokenizer.json')}: not a tokenizer the tokenizers library reads (${(error as Error).message})`, { cause: error });
    }
    const { text, source } = await chatTemplate(dir, tokenizerConfig, model.architecture.id === 'llava_onevision' ? 'llava' : 'qwen');
    let template: Template;
    try {
      template = new Template(text);
    } catch (error) {
      throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, source)}: the chat template does not parse (${(error as Error).message})`, { cause: error });
    }
    const field = model.architecture.id === 'llava_onevision' ? 'image_token_index' : 'image_token_id';
    const imageTokenId = model.config.tokens[field];
    if (imageTokenId === undefined) throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(dir, 'config.json')}: no ${field}; vlmq needs it to place image features`);
    return new TextProcessor(tokenizer, template, source, imageTokenId, dir);
  }

  /** The conversation as the chat template writes it. */
  render(conversation: Conversation): string {
    const user = [...Array.from({ length: conversation.images }, () => ({ type: 'image' })), { type: 'text', text: conversation.prompt }];
    const messages = [{ role: 'user', content: user }, { role: 'assistant', content: [{ type: 'text', text: conversation.answer }] }];
    try {
      return this.template.render({ messages, add_generation_prompt: false });
    } catch (error) {
      throw new VlmqError('ERR_VLMQ_BAD_FILE', `${join(this.dir, this.templateSource)}: rendering the chat template failed (${(error as Error).message})`, { cause: error });
    }
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
  conversationIds(conversation: Conversation, imageTokens: readonly number[], label: string): Int32Array {
    const ids = this.encode(this.render(conversation));
    const placeholders = ids.reduce((n, id) => n + (id === this.imageTokenId ? 1 : 0), 0);
    if (placeholders !== imageTokens.length) {
      throw new VlmqError('ERR_VLMQ_BAD_FILE', `${label}: the chat template wrote ${placeholders} image placeholder(s) for ${imageTokens.length} image(s) (template: ${this.templateSource})`);
    }
    const out = new Int32Array(ids.length - placeholders + imageTokens.reduce((a, b) => a + b, 0));
    let o = 0, image = 0;
    for (const id of ids) {
      if (id !== this.imageTokenId) out[o++] = id;
      else out.fill(id, o, (o += imageTokens[image++]));
    }
    return out;
  }
}

/** The checkpoint's chat template: chat_template.json, chat_template.jinja, then tokenizer_config.json; else the documented one. */
async function chatTemplate(dir: string, tokenizerConfig: Record<string, unknown>, family: keyof typeof FALLBACK_TEMPLATES): Promise<{ text: string; source: string }> {
  const json = await readOptionalJson(join(dir, 'chat_template.json'));
  if (typeof json?.chat_template === 'string') return { text: json.chat_template, source: 'chat_template.json' };
  const jinja = await readFile(join(dir, 'chat_template.jinja'), 'utf8').catch(() => null);
  if (jinja !== null) return { text: jinja, source: 'chat_template.jinja' };
  if (typeof tokenizerConfig.chat_template === 'string') return { text: tokenizerConfig.chat_template, source: 'tokenizer_config.json' };
  return { text: FALLBACK_TEMPLATES[family], source: `vlmq's fallback template (docs/formats.md ${family === 'qwen' ? '§3.8' : '§4.2'})` };
}
