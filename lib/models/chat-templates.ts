// The chat templates of the supported families, written from their documented behaviour
// (docs/formats.md §3.8, §4.2). The tiny checkpoints ship them, and the processor falls back on
// them when a checkpoint has no template of its own.

/**
 * Qwen2-VL-Instruct's chat template, written from its documented behaviour (docs/formats.md §3.8):
 * implicit default system turn, images/videos as vision_start + pad + vision_end (optionally numbered
 * with add_vision_id), generation prompt.
 */
export const QWEN_VL_CHAT_TEMPLATE = [
  '{%- set image_count = namespace(value=0) -%}',
  '{%- set video_count = namespace(value=0) -%}',
  '{%- for message in messages -%}',
  "{%- if loop.first and message['role'] != 'system' -%}",
  '{{- "<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n" -}}',
  '{%- endif -%}',
  "{{- '<|im_start|>' + message['role'] + '\\n' -}}",
  "{%- if message['content'] is string -%}",
  "{{- message['content'] -}}",
  '{%- else -%}',
  "{%- for content in message['content'] -%}",
  "{%- if content['type'] == 'image' or 'image' in content or 'image_url' in content -%}",
  '{%- set image_count.value = image_count.value + 1 -%}',
  "{%- if add_vision_id -%}{{- 'Picture ' + image_count.value | string + ': ' -}}{%- endif -%}",
  "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}",
  "{%- elif content['type'] == 'video' or 'video' in content -%}",
  '{%- set video_count.value = video_count.value + 1 -%}',
  "{%- if add_vision_id -%}{{- 'Video ' + video_count.value | string + ': ' -}}{%- endif -%}",
  "{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}",
  "{%- elif 'text' in content -%}",
  "{{- content['text'] -}}",
  '{%- endif -%}',
  '{%- endfor -%}',
  '{%- endif -%}',
  "{{- '<|im_end|>\\n' -}}",
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
].join('');

/**
 * The llava-hf LLaVA-OneVision chat template, from its documented behaviour (§4.2): role header,
 * one `<image>\n` per image and `<video>\n` per video before the text, no implicit system turn.
 */
export const LLAVA_OV_CHAT_TEMPLATE = [
  '{%- for message in messages -%}',
  "{{- '<|im_start|>' + message['role'] + '\\n' -}}",
  "{%- if message['content'] is string -%}",
  "{{- message['content'] -}}",
  '{%- else -%}',
  "{%- for content in message['content'] | selectattr('type', 'equalto', 'image') -%}{{- '<image>\\n' -}}{%- endfor -%}",
  "{%- for content in message['content'] | selectattr('type', 'equalto', 'video') -%}{{- '<video>\\n' -}}{%- endfor -%}",
  "{%- for content in message['content'] | selectattr('type', 'equalto', 'text') -%}{{- content['text'] -}}{%- endfor -%}",
  '{%- endif -%}',
  "{{- '<|im_end|>\\n' -}}",
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
].join('');
