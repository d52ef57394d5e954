// The in-process benchmark scripts (bench/*.ts) share one command-line rule (bench/usage.ts):
// `--help` prints the usage and exits 0; an unknown option or a value out of range prints what
// is wrong and the usage and exits 2, before any work, never a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const BENCH_DIR = resolve(import.meta.dirname, '..', 'bench');

const scripts: ReadonlyArray<{ script: string; bad: string[]; message: RegExp }> = [
  { script: 'engine-bench.js', bad: ['--batch', '9000'], message: /--batch must be an integer from 1 to 8190/ },
  { script: 'memory-bench.js', bad: ['--accounts', '1'], message: /--accounts must be an integer ≥ 2/ },
  { script: 'frame-bench.js', bad: ['--events', '0'], message: /--events must be an integer from 1 to 8190/ },
  { script: 'crc-bench.js', bad: ['--rounds', 'many'], message: /--rounds must be an integer from 1 to 100000/ },
  { script: 'prepare-micro.js', bad: ['--accounts', '1e9'], message: /--accounts must be an integer from 2 to 50000000/ },
  { script: 'prepare-micro.js', bad: ['--speed', '3'], message: /Unknown option '--speed'/ },
];

function run(script: string, args: readonly string[]): { status: number | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, [resolve(BENCH_DIR, script), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

test('every bench script answers --help with its usage and a bad option with exit 2', () => {
  for (const { script, bad, message } of scripts) {
    const help = run(script, ['--help']);
    assert.equal(help.status, 0, `${script} --help: ${help.stderr}`);
    assert.match(help.stdout, /^Usage: /, script);
    const refused = run(script, bad);
    assert.equal(refused.status, 2, `${script} ${bad.join(' ')}: ${refused.stdout}${refused.stderr}`);
    assert.match(refused.stderr, message, script);
    assert.match(refused.stderr, /Usage: /, script);
    assert.doesNotMatch(refused.stderr, /\n\s+at /, `${script}: a stack trace`);
  }
});
