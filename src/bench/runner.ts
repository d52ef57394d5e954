/**
 * Drives one target with the workload: `lanes` batches in flight, each lane sending the next
 * batch as soon as its previous one is answered (closed loop). Measures batch latency, the
 * throughput over time, result codes, and the server's CPU and memory.
 */
import { performance } from 'node:perf_hooks';
import { assert } from '../stdx/assert.js';
import { codeOfWire } from '../core/errors.js';
import { LatencyRecorder, type LatencySummary } from './latency.js';
import { sampleProcesses } from './process-stats.js';
import { NOT_SENT, type BenchTarget } from './target.js';
import type { Workload } from './workload.js';

/** Throughput is sampled this often for the chart and the progress line. */
const SAMPLE_INTERVAL_MS = 500;
const PROGRESS_INTERVAL_MS = 1000;
const TIMER_SLACK_MS = 50;

export type RunLimits = Readonly<{
  /** Stop after this many transfers. */
  transfers?: number | undefined;
  /** Stop claiming new batches after this long. */
  durationMs?: number | undefined;
}>;

/**
 * One sampling interval: its rate, and its slowest batch answered (0 when none was), which shows
 * whether the latency tail comes in bursts (a snapshot, a pause) or is spread over the run.
 */
export type ThroughputPoint = Readonly<{ atMs: number; transfersPerSecond: number; slowestBatchMs: number }>;

export type RunMeasurement = Readonly<{
  target: string;
  durability: string;
  lanes: number;
  transfersDone: number;
  elapsedMs: number;
  transfersPerSecond: number;
  latency: LatencySummary;
  throughput: readonly ThroughputPoint[];
  /** Count of every result code seen, by name ("ok", "insufficient_funds", ...). */
  codes: Readonly<Record<string, number>>;
  server: Readonly<{ cpuSeconds: number; cpuPercentOfOneCore: number; rssBytesMax: number }>;
  /** The bench process's own CPU over the run: what generating the load cost. */
  client: Readonly<{ cpuPercentOfOneCore: number }>;
}>;

export type ProgressLine = (line: string) => void;

type RunState = {
  nextBatch: number;
  transfersClaimed: number;
  transfersDone: number;
  /** Records answered so far, counted as targets report them (for progress and the chart). */
  recordsAnswered: number;
  deadlineMs: number;
  slotBusy: Uint8Array;
  slotWaiters: Map<number, Array<() => void>>;
  codeCounts: number[];
  /** The slowest batch answered since the sampler last looked, in ms. */
  slowestSinceSampleMs: number;
};

export async function runLoad(target: BenchTarget, workload: Workload, limits: RunLimits, progress: ProgressLine): Promise<RunMeasurement> {
  assert(limits.transfers !== undefined || limits.durationMs !== undefined, 'a run needs a limit');
  const latency = new LatencyRecorder();
  const pids = await target.serverPids();
  const cpuStart = sampleProcesses(pids);
  const clientCpuStart = process.cpuUsage();
  const startMs = performance.now();
  const state: RunState = {
    nextBatch: 0,
    transfersClaimed: 0,
    transfersDone: 0,
    recordsAnswered: 0,
    deadlineMs: limits.durationMs === undefined ? Infinity : startMs + limits.durationMs,
    slotBusy: new Uint8Array(workload.poolBatches),
    slotWaiters: new Map(),
    codeCounts: [],
    slowestSinceSampleMs: 0,
  };
  const sampler = startSampler(state, pids, startMs, progress, target.name);
  const stopTimer = limits.durationMs !== undefined && target.stopEarly !== undefined ? setTimeout(() => target.stopEarly?.(), limits.durationMs) : undefined;
  const lanes: Promise<void>[] = [];
  for (let lane = 0; lane < target.lanes; lane++) lanes.push(runLane(target, workload, limits, state, latency, lane));
  try {
    await Promise.all(lanes);
  } finally {
    sampler.stop();
    clearTimeout(stopTimer);
  }
  const elapsedMs = performance.now() - startMs;
  const cpuEnd = sampleProcesses(pids);
  const cpuSeconds = cpuEnd.cpuSeconds - cpuStart.cpuSeconds;
  const clientCpu = process.cpuUsage(clientCpuStart);
  const clientCpuSeconds = (clientCpu.user + clientCpu.system) / 1e6;
  return {
    target: target.name,
    durability: target.durability,
    lanes: target.lanes,
    transfersDone: state.transfersDone,
    elapsedMs,
    transfersPerSecond: state.transfersDone / (elapsedMs / 1000),
    latency: latency.summary(),
    throughput: sampler.points,
    codes: codeCountsByName(state.codeCounts),
    server: {
      cpuSeconds,
      cpuPercentOfOneCore: (cpuSeconds / (elapsedMs / 1000)) * 100,
      rssBytesMax: Math.max(sampler.rssBytesMax(), cpuEnd.rssBytes),
    },
    client: { cpuPercentOfOneCore: (clientCpuSeconds / (elapsedMs / 1000)) * 100 },
  };
}

/** Claims the next batch number, or undefined once the run's limit is reached. */
function claimBatch(workload: Workload, limits: RunLimits, state: RunState): { batchNumber: number; count: number } | undefined {
  if (performance.now() >= state.deadlineMs) return undefined;
  let count = workload.spec.batchRecords;
  if (limits.transfers !== undefined) count = Math.min(count, limits.transfers - state.transfersClaimed);
  if (count <= 0) return undefined;
  const batchNumber = state.nextBatch++;
  state.transfersClaimed += count;
  return { batchNumber, count };
}

async function runLane(
  target: BenchTarget,
  workload: Workload,
  limits: RunLimits,
  state: RunState,
  latency: LatencyRecorder,
  lane: number,
): Promise<void> {
  for (;;) {
    const claim = claimBatch(workload, limits, state);
    if (claim === undefined) return;
    const slot = workload.poolSlot(claim.batchNumber);
    // A slow lane may still be sending an older batch that shares these pool bytes.
    while (state.slotBusy[slot] === 1) await waitForSlot(state, slot);
    state.slotBusy[slot] = 1;
    const batch = workload.batch(claim.batchNumber, claim.count);
    const sentMs = performance.now();
    let reported = 0;
    const codes = await target.submit(batch, lane, (records) => {
      reported += records;
      state.recordsAnswered += records;
    });
    const tookMs = performance.now() - sentMs;
    latency.recordUs(tookMs * 1000);
    state.slowestSinceSampleMs = Math.max(state.slowestSinceSampleMs, tookMs);
    state.recordsAnswered += claim.count - reported;
    assert(codes.length === claim.count, 'one result code per record');
    let notSent = 0;
    for (let index = 0; index < codes.length; index++) {
      const code = codes[index] ?? 0;
      if (code === NOT_SENT) notSent++;
      else state.codeCounts[code] = (state.codeCounts[code] ?? 0) + 1;
    }
    // Timers may fire a little before performance.now() reaches the deadline (coarser clock).
    assert(notSent === 0 || performance.now() >= state.deadlineMs - TIMER_SLACK_MS, 'records dropped before the deadline');
    state.transfersDone += claim.count - notSent;
    state.slotBusy[slot] = 0;
    releaseSlot(state, slot);
  }
}

function waitForSlot(state: RunState, slot: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const waiters = state.slotWaiters.get(slot) ?? [];
    waiters.push(resolve);
    state.slotWaiters.set(slot, waiters);
  });
}

/** Wakes every lane waiting for the slot; they re-check, and one of them takes it. */
function releaseSlot(state: RunState, slot: number): void {
  const waiters = state.slotWaiters.get(slot);
  if (waiters === undefined) return;
  state.slotWaiters.delete(slot);
  for (const wake of waiters) wake();
}

function startSampler(state: RunState, pids: readonly number[], startMs: number, progress: ProgressLine, name: string) {
  const points: ThroughputPoint[] = [];
  let lastMs = startMs;
  let lastDone = 0;
  let lastPrintMs = startMs;
  let rssBytesMax = 0;
  const timer = setInterval(() => {
    const nowMs = performance.now();
    const done = state.recordsAnswered;
    const rate = ((done - lastDone) * 1000) / Math.max(1, nowMs - lastMs);
    points.push({ atMs: Math.round(nowMs - startMs), transfersPerSecond: Math.round(rate), slowestBatchMs: Math.round(state.slowestSinceSampleMs * 10) / 10 });
    state.slowestSinceSampleMs = 0;
    rssBytesMax = Math.max(rssBytesMax, sampleProcesses(pids).rssBytes);
    lastMs = nowMs;
    lastDone = done;
    if (nowMs - lastPrintMs >= PROGRESS_INTERVAL_MS) {
      lastPrintMs = nowMs;
      const seconds = (nowMs - startMs) / 1000;
      progress(`${name}: ${seconds.toFixed(1)} s, ${done.toLocaleString('en-US')} transfers, ${Math.round(done / seconds).toLocaleString('en-US')}/s so far`);
    }
  }, SAMPLE_INTERVAL_MS);
  return {
    points,
    rssBytesMax: () => rssBytesMax,
    stop: () => clearInterval(timer),
  };
}

function codeCountsByName(counts: readonly number[]): Record<string, number> {
  const byName: Record<string, number> = {};
  counts.forEach((count, wire) => {
    if (count > 0) byName[codeOfWire(wire) ?? `wire_${wire}`] = count;
  });
  return byName;
}
