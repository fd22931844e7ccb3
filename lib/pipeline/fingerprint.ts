// What identifies a calibrated run, so that a resumed run continues only the same work: the model
// (config and every tensor's name, dtype, shape and file, and the files' sizes), the calibration
// set (its header and size), the options, and vlmq's version. Tensor data is not hashed (that
// would read the whole model); replacing weights without changing any of this goes unnoticed.
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CalibrationBundle } from '../data/bundle.js';
import { canonicalJson } from '../json.js';
import type { Model } from '../models/model.js';
import { packageVersion } from '../version.js';

export async function runFingerprint(model: Model, bundle: CalibrationBundle, options: unknown): Promise<string> {
  const files = await Promise.all(model.checkpoint.files.map(async (f) => [f, (await stat(join(model.dir, f))).size]));
  const tensors = [...model.checkpoint.tensors.values()].map((t) => [t.name, t.dtype, t.shape, t.file]);
  const description = canonicalJson({
    vlmq: packageVersion(),
    config: model.config.raw,
    files,
    tensors,
    calibration: bundle.fingerprint(),
    options,
  });
  return createHash('sha256').update(description).digest('hex');
}
