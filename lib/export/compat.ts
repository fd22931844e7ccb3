// Which serving stacks load a GPTQ checkpoint with these settings (docs/formats.md §2.7), so that
// an export says up front where it will and will not run.

export interface GptqCompatInput {
  bits: number;
  groupSize: number;
  sym: boolean;
  format: 'gptq' | 'gptq_v2';
  /** Input widths of the quantized linears: vLLM needs the group size to divide each. */
  inFeatures?: readonly number[];
}

export interface LoaderSupport {
  loader: string;
  ok: boolean;
  note: string;
}

const MARLIN_GROUPS = new Set([-1, 32, 64, 128]);

export function gptqCompatibility({ bits, groupSize, sym, format, inFeatures = [] }: GptqCompatInput): LoaderSupport[] {
  const ragged = groupSize > 0 ? inFeatures.find((k) => k % groupSize !== 0) : undefined;
  const marlin = (bits === 4 || bits === 8) && sym && MARLIN_GROUPS.has(groupSize) && ragged === undefined;
  const marlinWhy = !(bits === 4 || bits === 8) ? `${bits}-bit` : !sym ? 'asymmetric' : ragged !== undefined ? `group size ${groupSize} does not divide ${ragged}` : `group size ${groupSize}`;
  const legacyNote = ragged !== undefined
    ? `not supported: group size ${groupSize} does not divide the input width ${ragged}`
    : format === 'gptq'
      ? 'vLLM releases before the GPTQ consolidation (PR #38288) only; fp16 activations'
      : 'vLLM releases with gptq_v2 support (PR #26092) and before PR #38288 only';
  return [
    {
      loader: 'vLLM (Marlin / auto_gptq)',
      ok: marlin,
      note: marlin ? 'current vLLM; CUDA compute capability ≥ 8.0' : `not supported (${marlinWhy}); current vLLM accepts only 4/8-bit symmetric with groups -1/32/64/128`,
    },
    { loader: 'vLLM legacy gptq kernel', ok: ragged === undefined, note: legacyNote },
    { loader: 'GPTQModel', ok: true, note: `every bit width; ${format}` },
    {
      loader: 'transformers (+ optimum + GPTQModel)',
      ok: true,
      note: 'through GPTQModel; block_name_to_quantize is written for the checkpoint layout',
    },
  ];
}

export function formatCompatibility(support: readonly LoaderSupport[]): string {
  const width = Math.max(...support.map((s) => s.loader.length));
  return support.map((s) => `  ${s.ok ? 'yes' : 'no '}  ${s.loader.padEnd(width)}  ${s.note}`).join('\n');
}
