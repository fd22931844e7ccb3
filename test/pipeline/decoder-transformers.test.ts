// The native decoder against Hugging Face transformers itself: hidden states of every layer and
// the attention-block gradients of layer 0, computed by transformers (in float64) on the tiny
// checkpoints that test/fixtures/checkpoints.ts regenerates byte for byte (fixtures and the script
// that made them: test/fixtures/transformers/, scripts/device/decoder-fixtures.{mts,py}).
import t from 'tap';
import { join } from 'node:path';
import { loadModel } from '../../lib/index.js';
import { loadSafetensors } from '../../lib/io/safetensors-reader.js';
import { DecoderLayer } from '../../lib/pipeline/decoder-layer.js';
import { writeTinyCheckpoint } from '../fixtures/checkpoints.js';
import { TRANSFORMERS_FIXTURES, TRANSFORMERS_FIXTURES_DIR } from '../fixtures/transformers/cases.js';
import { maxRelativeError } from '../helpers/problems.js';

const here = TRANSFORMERS_FIXTURES_DIR;

for (const fixture of TRANSFORMERS_FIXTURES) {
  t.test(`${fixture.name}: every decoder layer and the layer-0 attention gradients match transformers`, async (t) => {
    const { tensors, metadata } = await loadSafetensors(join(here, `${fixture.name}.safetensors`));
    t.match(metadata, { computed_in: 'float64' });
    const checkpoint = await writeTinyCheckpoint(join(t.testdir(), 'model'), fixture.checkpoint);
    const model = await loadModel(checkpoint.dir);
    const T = fixture.tokens;
    const tokens = { tokens: T, positions: tensors.get('positions')!.data as Int32Array, segments: Int32Array.from([0, T]) };
    const layers = model.config.text.numLayers;
    for (let l = 0; l < layers; l++) {
      const layer = await DecoderLayer.load(model, l);
      const input = tensors.get(`hidden.${l}`)!.data as Float32Array;
      const want = tensors.get(`hidden.${l + 1}`)!.data as Float32Array;
      const got = await layer.forward(input, tokens, 'output');
      const err = maxRelativeError(got, want);
      t.ok(err < 1e-5, `layer ${l} output within 1e-5 of transformers (${err.toExponential(1)})`);
      if (l === 0) {
        const f = tensors.get('f')!.data as Float32Array, u = tensors.get('u')!.data as Float32Array;
        const result = await layer.importance(u, f, tokens);
        for (const p of ['q', 'k', 'v', 'o'] as const) {
          const grad = tensors.get(`grad.${p}_proj`)!;
          const C = grad.shape[1];
          const g = Array.from({ length: T }, (_, i) => {
            let s = 0;
            for (let c = 0; c < C; c++) s += Math.abs((grad.data as Float32Array)[i * C + c]);
            return s / C;
          });
          const e = maxRelativeError(result[p], g);
          t.ok(e < 1e-4, `g_${p} = mean |∂L/∂Z_${p}| within 1e-4 of transformers' autograd (${e.toExponential(1)})`);
        }
        const loss = (tensors.get('loss')!.data as Float64Array)[0];
        t.ok(Math.abs(result.loss - loss) <= 1e-5 * loss, `block loss ${result.loss} ≈ ${loss}`);
      }
      layer.dispose();
    }
    await model.close();
  });
}
