// The tap side of the fuzzers: one tap test per property, `testRuns` cases with the fixed seed, in
// a scratch directory removed afterwards (makeScratch: a RAM disk where there is one). A failure
// prints fast-check's report: the seed, the path, the shrunk counterexample, the error, and the
// `npm run fuzz` command that replays it.
import { rm } from 'node:fs/promises';
import type { Test } from 'tap';
import { TEST_SEED, makeScratch, runProperty, type FuzzProperty } from './harness.js';

/** A known failure that does not block is still run, up to its first failure, each case bounded by this. */
const KNOWN_FAILURE_CASE_TIMEOUT_MS = 3000;

export function tapProperties(t: Test, properties: readonly FuzzProperty[]): void {
  for (const property of properties) {
    const known = property.knownFailure;
    // A known failure that blocks the event loop or ends the process cannot be run here.
    const skip = known?.blocks ? `known failure (run it with npm run fuzz -- --only ${property.name}): ${known.reason}` : false;
    t.test(`${property.name}: ${property.title}`, { skip }, async (t) => {
      const scratch = await makeScratch();
      t.teardown(() => rm(scratch, { recursive: true, force: true }));
      const started = performance.now();
      const result = await runProperty(property, {
        runs: property.testRuns,
        seed: TEST_SEED,
        scratch,
        ...(known ? { endOnFailure: true, caseTimeoutMs: KNOWN_FAILURE_CASE_TIMEOUT_MS } : {}),
      });
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      // A known failure is reported as a todo: shown, not failing the suite.
      if (result.failed) {
        const summary = `${property.name} failed (${result.kind}) with seed ${result.seed}, path ${result.path}`;
        t.fail(summary, { report: result.report, ...(known ? { todo: `known failure: ${known.reason}` } : {}) });
      } else {
        t.pass(`${result.numRuns} cases, seed ${result.seed}, ${seconds} s${known ? ` (the known failure did not show: if it is fixed, remove knownFailure from ${property.name})` : ''}`);
      }
    });
  }
}
