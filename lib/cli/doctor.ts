// vlmq doctor: what the loaded native addon is and can use (the facts of nativeInfo(), as
// node-llama-cpp's `inspect gpu`). When the addon cannot be loaded, the loader's error, which
// lists every place it tried and the fixes, is the answer (main.ts prints it, exit status 1).
import { availableParallelism, release } from 'node:os';
import { type BackendInfo, backends } from '../native/devices.js';
import { nativeInfo, type VlmqNativeInfo } from '../native/info.js';
import { type FlagTable, formatHelp, parseFlags } from './args.js';
import { type Command, type CommandContext, packageVersion } from './command.js';
import { formatBytes, formatFields } from './output.js';

const NAME = 'doctor';

const FLAGS: FlagTable = {
  json: { type: 'boolean', description: 'print one JSON object with every field', group: 'Other' },
};

export const doctorCommand: Command = {
  name: NAME,
  summary: 'show the native addon, BLAS, threads and the devices (which are usable, and why not)',
  help: () => formatHelp({
    usage: [`vlmq ${NAME} [--json]`],
    description: [
      'Loads the native addon and prints where it was found, how it was built, the backends compiled in,',
      'the BLAS library and threads, and whether CUDA is usable (and if not, why). Exits with status 1 and',
      "the loader's report (every path tried, and the fixes) when the addon cannot be loaded.",
    ].join('\n'),
    flags: FLAGS,
  }),
  run,
};

async function run(argv: readonly string[], { out }: CommandContext): Promise<void> {
  parseFlags(NAME, FLAGS, argv, { names: [], required: 0 });
  const info = nativeInfo();
  const version = packageVersion();
  if (info.version !== version) out.warn(`the addon reports version ${info.version} but the package is ${version}; rebuild it (npx cmake-js compile)`);
  const environment = {
    node: { version: process.version, abi: process.versions.modules, napi: process.versions.napi ?? null },
    platform: { os: process.platform, arch: process.arch, release: release() },
    availableParallelism: availableParallelism(),
  };
  const devices = backends();
  out.result({ packageVersion: version, ...info, devices, ...environment }, formatFields([...lines(info, version, environment.availableParallelism), ...deviceLines(devices)]));
}

function lines(info: VlmqNativeInfo, version: string, parallelism: number): [string, string][] {
  const { cpu, cuda } = info;
  return [
    ['vlmq', `${version}${info.version === version ? '' : ` (addon ${info.version})`}`],
    ['addon', info.path],
    ['build', `${info.buildSystem}, ${info.buildType}`],
    ['backends', info.backends.join(', ') || 'none'],
    ['blas', cpu.blas || 'none'],
    ['blas core', cpu.blasCore || '-'],
    ['blas threads', String(cpu.blasThreads)],
    ['cpu threads', `${cpu.threads} (hardware ${cpu.hardwareThreads}, available to Node ${parallelism})`],
    ['node', `${process.version} (ABI ${process.versions.modules}, N-API ${process.versions.napi ?? '?'})`],
    ['platform', `${process.platform}-${process.arch}, ${release()}`],
    ['cuda', !cuda.compiled ? 'not compiled in' : cuda.usable ? 'usable' : 'compiled in, not usable'],
    ['cuda reason', cuda.reason || (cuda.usable ? 'ok' : 'unknown')],
    ['cuda devices', cuda.deviceCount > 0 ? `${cuda.deviceCount} (${cuda.deviceName || 'unnamed'})` : '0'],
    ['cuda driver', cudaVersion(cuda.driverVersion)],
    ['cuda runtime', cudaVersion(cuda.runtimeVersion)],
    ['cuda libraries', cuda.libraries || 'none found'],
  ];
}

/** One line per backend of the registry: what `--device` can name, and why one cannot be used. */
function deviceLines(devices: readonly BackendInfo[]): [string, string][] {
  const auto = devices.find((d) => d.kind === 'cuda' && d.usable)?.name ?? 'cpu';
  return devices.map((d) => {
    const what = [d.deviceName, d.memoryBytes ? formatBytes(d.memoryBytes) : ''].filter(Boolean).join(', ');
    const state = d.usable ? `usable${d.name === auto ? ' (auto)' : ''}` : `not usable: ${d.reason}`;
    return [`device ${d.name}`, `${state}${what ? `; ${what}` : ''}`];
  });
}

/** CUDA's integer versions: 12040 → "12.4"; 0 → "none". */
function cudaVersion(value: number): string {
  if (!value) return 'none';
  return `${Math.floor(value / 1000)}.${Math.floor((value % 1000) / 10)}`;
}
