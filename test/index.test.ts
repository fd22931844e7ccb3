// The package's two entry points: `vlmq` (lib/index.ts) for the library, `vlmq/demo`
// (lib/demo/index.ts) for the generators of tiny models and calibration data and the demo.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import * as demo from '../lib/demo/index.js';
import * as vlmq from '../lib/index.js';

const repoRoot = join(import.meta.dirname, '..');
const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { exports: Record<string, { types?: string; import?: string } | string> };

const GENERATORS = ['writeTinyCheckpoint', 'writeBuiltinSet', 'builtinRecords', 'generateBuiltinItems', 'BUILTIN_DEFAULTS', 'syntheticSamples', 'describeSamples', 'runDemo'];

t.test('package.json maps vlmq and vlmq/demo onto the compiled lib/index.ts and lib/demo/index.ts', async (t) => {
  t.same(packageJson.exports['.'], { types: './dist/index.d.ts', import: './dist/index.js' });
  t.same(packageJson.exports['./demo'], { types: './dist/demo/index.d.ts', import: './dist/demo/index.js' });
});

t.test('the generators are exported by vlmq/demo and not by vlmq', async (t) => {
  for (const name of GENERATORS) {
    t.ok(name in demo, `vlmq/demo exports ${name}`);
    t.notOk(name in vlmq, `vlmq does not export ${name}`);
  }
  t.same(Object.keys(demo).sort(), [...GENERATORS].sort(), 'vlmq/demo exports nothing else');
});

t.test('vlmq exports what a quantization needs, from one linear to a verified checkpoint', async (t) => {
  for (const name of [
    'HessianAccumulator', 'quantizeLinear', 'DEFAULT_LINEAR_OPTIONS', 'SafetensorsFile', 'loadSafetensors', 'readSafetensorsHeader', 'writeSafetensors',
    'bf16ToF32', 'f32ToBf16', 'VlmqError', 'nativeInfo', 'setThreads', 'loadModel', 'Calibration', 'CalibrationBundle', 'writeCalibrationBundle',
    'buildCalibrationBundle', 'TextProcessor', 'VisionTower', 'preprocessQwenImage', 'preprocessLlavaImage', 'mropePositions', 'modalityMask',
    'quantize', 'resolveQuantizeOptions', 'exportModel', 'verifyCheckpoint', 'gptqCompatibility',
  ]) t.ok(name in vlmq, name);
});
