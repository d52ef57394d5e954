/**
 * What a bench run prints and keeps: a summary per target, a side-by-side table with
 * walletd / peer ratios (one table per distribution), and results/<timestamp>/{result.json, chart.svg}.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { renderChart } from './chart.js';
import type { RunMeasurement } from './runner.js';
import type { CheckResult } from './verify.js';
import type { Distribution } from './workload.js';

export type TargetResult = Readonly<{ distribution: Distribution; run: RunMeasurement; check: CheckResult; setupMs: number }>;

export type BenchReport = Readonly<{
  command: string;
  startedAt: string;
  machine: Readonly<{ cpuModel: string; cpus: number; memoryBytes: number; kernel: string; node: string }>;
  /** 1-minute load average at the start and the end: other work on the box lowers every figure. */
  loadAverage: Readonly<{ atStart: number; atEnd: number }>;
  workload: Readonly<Record<string, string | number | boolean | null>>;
  results: readonly TargetResult[];
}>;

export function describeMachine(): BenchReport['machine'] {
  const cores = cpus();
  return { cpuModel: cores[0]?.model ?? 'unknown', cpus: cores.length, memoryBytes: totalmem(), kernel: release(), node: process.version };
}

const ms = (us: number): string => (us / 1000).toFixed(us < 10_000 ? 2 : 1);
const count = (value: number): string => Math.round(value).toLocaleString('en-US');

export function summaryLines(result: TargetResult): string[] {
  const { run, check } = result;
  const l = run.latency;
  const cpu = Number.isFinite(run.server.cpuPercentOfOneCore) && run.server.cpuSeconds > 0 ? `${run.server.cpuPercentOfOneCore.toFixed(0)}% of one core` : 'n/a';
  const rss = run.server.rssBytesMax > 0 ? `${(run.server.rssBytesMax / 2 ** 20).toFixed(0)} MiB` : 'n/a';
  return [
    `${run.target}, ${result.distribution} [${run.durability}]`,
    `  ${count(run.transfersPerSecond)} transfers/s  (${count(run.transfersDone)} transfers in ${(run.elapsedMs / 1000).toFixed(2)} s, ${run.lanes} batches in flight)`,
    `  batch latency  p50 ${ms(l.p50Us)} ms  p99 ${ms(l.p99Us)} ms  p99.9 ${ms(l.p999Us)} ms  max ${ms(l.maxUs)} ms  (${count(l.batches)} batches)`,
    `  server CPU ${cpu}, RSS ${rss}; bench client CPU ${run.client.cpuPercentOfOneCore.toFixed(0)}% of one core`,
    `  check: ${check.ok ? `ok (${count(check.accountsChecked)} balances exact, sum unchanged, replay of ${count(check.replayedTransfers)} transfers moved nothing)` : `FAILED: ${check.problems.join(' | ')}`}`,
  ];
}

/** Rows: figures; columns: targets, walletd first; ratios are walletd's figure / the peer's. */
export function sideBySide(results: readonly TargetResult[]): string {
  const base = results[0];
  if (base === undefined) return '';
  const header = ['', ...results.map((r) => r.run.target)];
  const rows: string[][] = [
    ['transfers/s', ...results.map((r) => count(r.run.transfersPerSecond))],
    [`${base.run.target} / this`, ...results.map((r) => ratio(base.run.transfersPerSecond, r.run.transfersPerSecond))],
    ['batch p50 ms', ...results.map((r) => ms(r.run.latency.p50Us))],
    ['batch p99 ms', ...results.map((r) => ms(r.run.latency.p99Us))],
    ['batch p99.9 ms', ...results.map((r) => ms(r.run.latency.p999Us))],
    ['batch max ms', ...results.map((r) => ms(r.run.latency.maxUs))],
    ['server CPU %', ...results.map((r) => (r.run.server.cpuSeconds > 0 ? r.run.server.cpuPercentOfOneCore.toFixed(0) : 'n/a'))],
    ['client CPU %', ...results.map((r) => r.run.client.cpuPercentOfOneCore.toFixed(0))],
    ['server RSS MiB', ...results.map((r) => (r.run.server.rssBytesMax > 0 ? (r.run.server.rssBytesMax / 2 ** 20).toFixed(0) : 'n/a'))],
    ['transfers', ...results.map((r) => count(r.run.transfersDone))],
    ['check', ...results.map((r) => (r.check.ok ? 'ok' : 'FAILED'))],
  ];
  const table = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...table.map((row) => (row[column] ?? '').length)));
  const lines = table.map((row) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  '));
  const durability = results.map((r) => `  ${r.run.target}: ${r.run.durability}`);
  return [...lines, 'durability:', ...durability].join('\n');
}

function ratio(walletd: number, peer: number): string {
  if (peer <= 0) return 'n/a';
  const value = walletd / peer;
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)}×`;
}

/** Writes result.json and chart.svg into results/<timestamp>/ and returns that folder. */
export function writeResults(report: BenchReport, resultsRoot: string): string {
  const folder = join(resultsRoot, report.startedAt.replace(/[:.]/g, '-'));
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'result.json'), `${JSON.stringify(report, null, 2)}\n`);
  const title = `walletd bench: ${String(report.workload['distribution'])}, ${String(report.workload['accounts'])} accounts, batch ${String(report.workload['batchSize'])}, ${report.workload['durable'] === true ? 'durable' : 'not durable'}`;
  const severalDistributions = new Set(report.results.map((r) => r.distribution)).size > 1;
  const lines = report.results.map((r) => ({ label: severalDistributions ? `${r.run.target}, ${r.distribution}` : r.run.target, run: r.run }));
  writeFileSync(join(folder, 'chart.svg'), renderChart(title, lines));
  return folder;
}
