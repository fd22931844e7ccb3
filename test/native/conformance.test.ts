// The Backend conformance suite (native/include/vlmq/conformance.h) on every backend of the
// registry: one assertion per case, grouped by primitive; a backend that cannot run here is
// skipped with the registry's reason. The self-test runs the suite on a CPU backend broken on
// purpose and checks that the suite catches exactly what was broken.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { NativeConformanceResult } from '../../lib/native/binding.js';
import { binding } from '../../lib/native/loader.js';
import { packageRoot } from '../../lib/version.js';

const raw = binding();

function byPrimitive(results: NativeConformanceResult[]): Map<string, NativeConformanceResult[]> {
  const groups = new Map<string, NativeConformanceResult[]>();
  for (const r of results) groups.set(r.primitive, [...(groups.get(r.primitive) ?? []), r]);
  return groups;
}

/** Every method of the Backend class in backend.h but name(), device() and free() (which Buffer calls). */
function contractPrimitives(): string[] {
  const header = readFileSync(join(packageRoot, 'native/include/vlmq/backend.h'), 'utf8');
  const backend = header.slice(header.indexOf('class Backend {'));
  const names = [...backend.matchAll(/virtual\s+[\w:<>*& ]+?\b(\w+)\(/g)].map((m) => m[1]);
  return names.filter((name) => !['name', 'device', 'free'].includes(name));
}

for (const entry of raw.backends()) {
  const skip = entry.usable ? false : `${entry.name}: ${entry.reason}`;
  t.test(`${entry.name} conforms to the Backend contract`, { skip }, async (t) => {
    const groups = byPrimitive(await raw.conformance(entry.name));
    for (const primitive of contractPrimitives()) t.ok(groups.has(primitive), `the suite has cases for ${primitive}`);
    for (const [primitive, cases] of groups) {
      t.test(primitive, async (t) => {
        for (const r of cases) t.ok(r.ok, `${r.primitive}: ${r.name}: ${r.detail}`);
      });
    }
  });
}

t.test('the suite fails a backend broken in gemm and gather_rows in those primitives and in no other', async (t) => {
  const results = await raw.conformanceSelfTest();
  const failing = [...new Set(results.filter((r) => !r.ok).map((r) => r.primitive))].sort();
  t.same(failing, ['gather_rows', 'gemm'], `failing primitives: ${failing.join(', ')}`);
  const gemm = results.filter((r) => r.primitive === 'gemm');
  t.ok(gemm.filter((r) => !r.ok).every((r) => /C\[0, 0\]/.test(r.detail)), 'each gemm failure names the element that is off');
  t.ok(gemm.filter((r) => /InvalidArgument$/.test(r.name)).every((r) => r.ok), 'gemm still rejects what it must');
  const gathers = results.filter((r) => r.primitive === 'gather_rows' && /an index with repeats/.test(r.name));
  t.ok(gathers.filter((r) => !r.ok).length >= 2, 'the gathers with a real index fail');
});
