// JSON files as the fuzzers write them (calibration sets, config.json, the checkpoint index):
// generated values serialized in several styles, with raw literals JSON.stringify never writes
// put in, and edits of the resulting bytes.
import fc from 'fast-check';
import { applyByteEdit, byteEdit, type ByteEdit } from './safetensors-bytes.js';

/**
 * A string value that `serialize` replaces by raw JSON text: a literal (1e400, -0, 1.0, 2^53 + 1)
 * or `depth` nested arrays (up to `maxDepth`). Kept short in the value, so that a failure prints it short.
 */
const RAW = '\u0000raw:';
const DEEP = '\u0000deep:';

export function rawLiteral(maxDepth = 50_000): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom('1e400', '-0', '1.0', '9007199254740993', '-9007199254740993', '1e-400', '0.5', '-1').map((text) => `${RAW}${text}`),
    deepLiteral(1, Math.min(64, maxDepth)),
    ...(maxDepth >= 1_000 ? [deepLiteral(1_000, maxDepth)] : []),
  );
}

/** Arrays nested `minDepth` to `maxDepth` deep, as a raw literal. */
export function deepLiteral(minDepth: number, maxDepth: number): fc.Arbitrary<string> {
  return fc.integer({ min: minDepth, max: maxDepth }).map((depth) => `${DEEP}${depth}`);
}

/** JSON text of `value` with `indent`, raw literals substituted, line ends as `eol`. */
export function serialize(value: unknown, indent: 0 | 2 | '\t' = 0, eol: '\n' | '\r\n' = '\n'): string {
  const text = JSON.stringify(value, null, indent === 0 ? undefined : indent) ?? 'null';
  // JSON.stringify escapes the markers' NUL; a literal's own text never holds a quote.
  return text
    .replace(/"\\u0000raw:([^"]*)"/g, '$1')
    .replace(/"\\u0000deep:(\d+)"/g, (_, depth: string) => `${'['.repeat(Number(depth))}"x"${']'.repeat(Number(depth))}`)
    .replaceAll('\n', eol);
}

/** Byte edits of a JSON file: the generic ones, a wrapping of the whole value in deep nesting, a few bytes spliced in. */
export type TextEdit = ByteEdit | { kind: 'wrap'; depth: number } | { kind: 'splice'; at: number; bytes: number[] };

export const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  byteEdit.filter((e) => e.kind !== 'length-prefix'),
  fc.record({ kind: fc.constant('wrap' as const), depth: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1_000, max: 100_000 })) }),
  fc.record({
    kind: fc.constant('splice' as const),
    at: fc.nat(),
    // lone continuation bytes, overlong and surrogate leads, 0xff, line ends, a quote, a backslash, NUL, a BOM's bytes
    bytes: fc.array(fc.oneof(fc.constantFrom(0x80, 0xbf, 0xc0, 0xed, 0xa0, 0xf4, 0x90, 0xff, 0x0a, 0x0d, 0x22, 0x5c, 0x00, 0xef, 0xbb), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
  }),
);

export function applyTextEdit(bytes: Uint8Array, edit: TextEdit): Uint8Array {
  if (edit.kind === 'wrap') return Buffer.concat([Buffer.from('['.repeat(edit.depth)), bytes, Buffer.from(']'.repeat(edit.depth))]);
  if (edit.kind === 'splice') {
    const at = edit.at % (bytes.length + 1);
    return Buffer.concat([bytes.subarray(0, at), Buffer.from(edit.bytes), bytes.subarray(at)]);
  }
  return applyByteEdit(bytes, edit);
}
