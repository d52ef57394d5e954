/**
 * `walletd bench` end to end against walletd itself: it starts `walletd serve` as a child
 * process on a temporary data directory, opens and funds the accounts through the client SDK,
 * runs a small load, checks exactly-once (balances, sum, replay of batch 0), stops the server
 * and writes result.json and chart.svg. Small sizes: this checks the plumbing, not the speed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBench } from '../src/bench/bench.js';
import { parseBenchArgs } from '../src/bench/options.js';
import { startWalletdServer } from '../src/bench/walletd-server.js';
import { WalletdTarget } from '../src/bench/walletd-target.js';
import { runLoad } from '../src/bench/runner.js';
import { checkRun } from '../src/bench/verify.js';
import { Workload } from '../src/bench/workload.js';

const quiet = (): void => undefined;

test('walletd bench: starts a server per distribution, runs, checks, stops it, writes the results', async () => {
  const resultsDir = mkdtempSync(join(tmpdir(), 'walletd-bench-test-'));
  try {
    const options = parseBenchArgs(
      ['--accounts', '2000', '--transfers', '30000', '--batch-size', '1000', '--distribution', 'zipf,hot', '--results', resultsDir],
      {},
    );
    assert.ok(options !== 'help');
    const printed: string[] = [];
    const passed = await runBench(options, 'walletd bench (test)', { print: (line) => printed.push(line), progress: quiet });
    assert.equal(passed, true, printed.join('\n'));
    const [folder] = readdirSync(resultsDir);
    assert.ok(folder !== undefined);
    const report = JSON.parse(readFileSync(join(resultsDir, folder, 'result.json'), 'utf8')) as {
      workload: { distribution: string };
      results: Array<{
        distribution: string;
        run: { target: string; transfersDone: number; codes: Record<string, number>; server: { cpuSeconds: number } };
        check: { ok: boolean };
      }>;
    };
    assert.equal(report.workload.distribution, 'zipf,hot');
    assert.deepEqual(report.results.map((result) => result.distribution), ['zipf', 'hot'], 'one walletd result per distribution, in order');
    for (const walletd of report.results) {
      assert.equal(walletd.run.target, 'walletd');
      assert.equal(walletd.run.transfersDone, 30_000);
      assert.deepEqual(walletd.run.codes, { ok: 30_000 });
      assert.equal(walletd.check.ok, true);
      assert.ok(walletd.run.server.cpuSeconds > 0, 'the server process was measured');
    }
    assert.ok(printed.includes('walletd, zipf [fsync per group commit]') && printed.includes('walletd, hot [fsync per group commit]'), printed.join('\n'));
    const chart = readFileSync(join(resultsDir, folder, 'chart.svg'), 'utf8');
    assert.match(chart, /^<svg/);
    assert.ok(chart.includes('>walletd, zipf (') && chart.includes('>walletd, hot ('), 'the legend tells the two runs apart');
  } finally {
    rmSync(resultsDir, { recursive: true, force: true });
  }
});

test('walletd bench: hot account without fsync, and the server and its data are gone afterwards', async () => {
  const server = await startWalletdServer({ durable: false });
  const target = await WalletdTarget.connect(
    { host: server.host, port: server.protocolPort, token: server.token },
    { connections: 2, framesInFlightPerConnection: 2, durability: 'no fsync', server },
  );
  const work = new Workload({ accounts: 500, batchRecords: 700, distribution: 'hot', seed: 3, zipfExponent: 1, transfersMax: 7_000, runTag: 'hot' });
  try {
    await target.setup(work, quiet);
    const run = await runLoad(target, work, { transfers: 7_000 }, quiet);
    assert.deepEqual(run.codes, { ok: 7_000 });
    assert.deepEqual((await checkRun(target, work, run)).problems, []);
  } finally {
    await target.close();
  }
  assert.equal(existsSync(server.dataDir), false, 'the data directory is removed');
  assert.throws(() => process.kill(server.pid, 0), 'the server has exited');
});
