// Crash test with real processes: acknowledged transfers survive SIGKILL exactly once.
//
// A child process (test/support/engine-child.ts) opens the ledger with fsync on and runs 16
// concurrent submit loops (transfers, some rejected; deposits; withdrawals; retries; a record
// twice in one batch), printing every outcome the moment its promise resolves. The parent kills
// it with SIGKILL at moments drawn from a seeded PRNG (src/stdx/prng.ts): KILLS_UNDER_LOAD times
// while it is under load (each after the run's first snapshot, which prints a line), and
// EARLY_KILLS times during its start (recovery, checks, setup). The
// same data directory accumulates across all kills, and snapshots are taken every 400 records.
//
// After every kill, before the restart, the parent checks the directory:
// - recovery from the newest snapshot and a replay from the first record give the same digest;
// - the log, walked frame by frame, holds every acknowledged outcome exactly once: at the
//   acknowledged sequence, with the acknowledged code and the content that was sent, and no
//   transaction id appears twice in it; the recovered state remembers each the same way;
// - the balances the walk adds up from the log equal the recovered balances; every currency
//   sums to zero and no customer balance is negative.
// On restart the child prints its recovered head and digest (must equal the parent's), then
// checks through the Ledger API that `transfer(id)` returns every outcome acknowledged since its
// last check with the same code and sequence, and retries some with the same content (the
// first answer must come back). At the end the parent opens the ledger itself, checks
// `transfer(id)` and retries again, and `walletd verify` must pass.
//
// A second run does all of the above with 64 KiB log segments (SEGMENT_KILLS_UNDER_LOAD +
// SEGMENT_EARLY_KILLS kills, another seed), so the log rolls to a new segment every few group
// commits and kills land while a segment is created, empty, or half-written. After every kill it
// also checks the segment files: each is named by the sequence of its first frame, none is larger
// than the limit, only the last may be empty (then named head + 1); at the end there must be many.
// The states a random kill rarely hits (an empty newest segment, a torn first frame in it, a torn
// frame at the end of an older segment) are built directly in test/log-segments.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { currencyByNumeric } from '../src/core/currency.js';
import { fingerprintTransactionId } from '../src/core/decide.js';
import { stateDigest } from '../src/core/digest.js';
import { codeOfWire, Wire } from '../src/core/errors.js';
import { decodeEvent, NO_INDEX } from '../src/core/events.js';
import type { LedgerState } from '../src/core/ledger-state.js';
import { KIND_NAMES, encodeTransferBatch } from '../src/core/transfer-record.js';
import { openLedger } from '../src/engine/ledger.js';
import { dataPaths, recover } from '../src/engine/recovery.js';
import { GENESIS_CHAIN_HASH } from '../src/log/frame.js';
import { scanSegment, type ScanContext, type ScanEnd } from '../src/log/scan.js';
import { listSegments } from '../src/log/segments.js';
import { Prng } from '../src/stdx/prng.js';
import { ackLine, parseAck, type Ack } from './support/engine-child.js';
import { runWalletd, tempDir } from './support/ledger.js';

const SEED = Number(process.env['WALLETD_CRASH_SEED'] ?? 4242);
const KILLS_UNDER_LOAD = Number(process.env['WALLETD_CRASH_KILLS'] ?? 24);
const EARLY_KILLS = 4;
const SEGMENT_SEED = SEED + 1;
const SEGMENT_KILLS_UNDER_LOAD = Number(process.env['WALLETD_CRASH_SEGMENT_KILLS'] ?? 12);
const SEGMENT_EARLY_KILLS = 2;
/** Small enough that the log rolls every few group commits; larger than any group the child makes. */
const SMALL_SEGMENT_BYTES = 64 * 1024;
/** Segment files the small-segment run must have made by its end. */
const SEGMENTS_MIN = 10;
const CHILD = fileURLToPath(new URL('./support/engine-child.js', import.meta.url));
const CHILD_RUN_TIMEOUT_MS = 30_000;
/** Older acknowledged outcomes the child re-checks through the API on each start, besides the new ones. */
const RECHECK_SAMPLE = 200;

type RunResult = { acks: Ack[]; started: { head: number; digest: string } | undefined; verified: boolean; reachedReady: boolean; killedAfterSnapshot: boolean; rolloversSeen: number; signal: string | null; stderr: string; bad: string[] };

/**
 * When to kill: `afterMs` after spawn ('start'); after `ready` and the run's first committed
 * snapshot ('load': so the restart recovers from a snapshot taken under load however slow the
 * machine, where a kill timed from `ready` alone often came before any snapshot was written); or
 * after the child has created its `rollovers`-th new segment file since `ready` ('rollover'; seen
 * by watching the log directory, so the kill lands while the new segment is still empty or just
 * written to).
 */
type KillPlan = Readonly<{ at: 'start' | 'load' | 'rollover'; afterMs: number; rollovers: number }>;

/** A rollover- or snapshot-timed kill happens anyway this long after `ready` if the event does not come. */
const EVENT_WAIT_MS = 10_000;

/** Starts the child and kills it with SIGKILL as `kill` says. */
function runChild(dataDir: string, run: number, seed: number, checkFile: string, segmentBytesMax: number | undefined, kill: KillPlan): Promise<RunResult> {
  const args = [CHILD, dataDir, String(run), String(seed), checkFile, ...(segmentBytesMax === undefined ? [] : [String(segmentBytesMax)])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const result: RunResult = { acks: [], started: undefined, verified: false, reachedReady: false, killedAfterSnapshot: false, rolloversSeen: 0, signal: null, stderr: '', bad: [] };
  let pending = '';
  let watcher: FSWatcher | undefined;
  let fallbackKill: NodeJS.Timeout | undefined;
  let killScheduled = false;
  const killNow = (): void => void child.kill('SIGKILL');
  const guard = setTimeout(killNow, CHILD_RUN_TIMEOUT_MS);
  if (kill.at === 'start') setTimeout(killNow, kill.afterMs);
  const killAfterRollovers = (): void => {
    const logDir = dataPaths(dataDir).logDir;
    const known = new Set(readdirSync(logDir));
    fallbackKill = setTimeout(killNow, EVENT_WAIT_MS);
    watcher = watch(logDir, (_event, name) => {
      if (name === null || known.has(name) || !/^segment-\d{20}\.wlog$/.test(name)) return;
      known.add(name);
      if (++result.rolloversSeen !== kill.rollovers) return;
      if (kill.afterMs === 0) killNow();
      else setTimeout(killNow, kill.afterMs);
    });
  };
  child.stdout.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    const lines = pending.split('\n');
    pending = lines.pop()!; // a partial last line is never counted
    for (const line of lines) {
      if (line.startsWith('ack ')) result.acks.push(parseAck(line));
      else if (line.startsWith('started ')) {
        const [, head, digest] = line.split(' ');
        result.started = { head: Number(head), digest: digest! };
      } else if (line.startsWith('verified ')) result.verified = true;
      else if (line === 'ready') {
        result.reachedReady = true;
        if (kill.at === 'load') fallbackKill = setTimeout(killNow, EVENT_WAIT_MS);
        else if (kill.at === 'rollover') killAfterRollovers();
      } else if (line.startsWith('snapshot ')) {
        if (kill.at === 'load' && result.reachedReady && !killScheduled) {
          killScheduled = true;
          clearTimeout(fallbackKill);
          setTimeout(() => {
            result.killedAfterSnapshot = true;
            killNow();
          }, kill.afterMs);
        }
      } else if (line.startsWith('bad ')) result.bad.push(line);
    }
  });
  child.stderr.on('data', (chunk: Buffer) => (result.stderr += chunk.toString('utf8')));
  return new Promise((resolve) => {
    child.on('close', (_code, signal) => {
      clearTimeout(guard);
      clearTimeout(fallbackKill);
      watcher?.close();
      result.signal = signal;
      resolve(result);
    });
  });
}

type Logged = { sequence: number; code: number; kind: string; from: string; to: string; amount: bigint; currency: number };

/** One segment file as the walk found it. */
type WalkedSegment = { path: string; nameSequence: number; firstFrameSequence: number | undefined; bytes: number; end: ScanEnd };

/** Everything the log says, walked with full checks and added up independently of the engine. */
function walkLog(dataDir: string): { byId: Map<string, Logged>; balances: Map<string, { currency: number; balance: bigint }>; head: number; segments: WalkedSegment[] } {
  const byId = new Map<string, Logged>();
  const ids: string[] = [];
  const balances = new Map<string, { currency: number; balance: bigint }>();
  const context: ScanContext = { chainHash: GENESIS_CHAIN_HASH, nextSequence: 1 };
  const segments = listSegments(dataPaths(dataDir).logDir);
  const walked: WalkedSegment[] = [];
  segments.forEach((segment, index) => {
    let firstFrameSequence: number | undefined;
    const end = scanSegment(segment.path, 0, index === segments.length - 1, context, (header, body) => {
      firstFrameSequence ??= header.firstSequence;
      const tableStart = body.length - 4 * header.eventCount;
      for (let event = 0; event < header.eventCount; event++) {
        const decoded = decodeEvent(body, body.readUInt32LE(tableStart + 4 * event)).event;
        const sequence = header.firstSequence + event;
        if (decoded.type === 1) {
          ids.push(decoded.accountId);
          balances.set(decoded.accountId, { currency: decoded.currencyNumeric, balance: 0n });
          continue;
        }
        const from = decoded.fromIndex === NO_INDEX ? decoded.fromInline : ids[decoded.fromIndex]!;
        const to = decoded.toIndex === NO_INDEX ? decoded.toInline : ids[decoded.toIndex]!;
        assert.equal(byId.has(decoded.transactionId), false, `transaction ${decoded.transactionId} is in the log twice (again at sequence ${sequence})`);
        byId.set(decoded.transactionId, { sequence, code: decoded.code, kind: KIND_NAMES[decoded.kind] ?? '?', from, to, amount: decoded.amount, currency: decoded.currencyNumeric });
        if (decoded.code !== Wire.ok) continue;
        const source = balances.get(from)!;
        const target = balances.get(to)!;
        source.balance -= decoded.amount;
        target.balance += decoded.amount;
        assert.equal(source.balance, decoded.fromBalanceAfter, `sequence ${sequence}: source balance after`);
        assert.equal(target.balance, decoded.toBalanceAfter, `sequence ${sequence}: destination balance after`);
      }
    });
    walked.push({ path: segment.path, nameSequence: segment.firstSequence, firstFrameSequence, bytes: statSync(segment.path).size, end });
  });
  return { byId, balances, head: context.nextSequence - 1, segments: walked };
}

/** What the segment files looked like after one kill (before the restart cuts any torn tail). */
type SegmentsSeen = { count: number; lastEmpty: boolean; tornInNewSegment: boolean; tornTail: boolean };

/**
 * The segment files as the writer must leave them, even when killed mid-rollover: each named by
 * the sequence of its first frame (the read index finds events by name), no file past the limit
 * (no group the child makes is larger), and only the last one empty or torn; an empty last one
 * is named for the next sequence (the group it was created for).
 */
function checkSegments(segments: readonly WalkedSegment[], head: number, segmentBytesMax: number, where: string): SegmentsSeen {
  segments.forEach((segment, index) => {
    const isLast = index === segments.length - 1;
    const name = basename(segment.path);
    assert.ok(segment.bytes <= segmentBytesMax, `${where}: ${name} is ${segment.bytes} bytes, over the ${segmentBytesMax}-byte limit`);
    if (segment.firstFrameSequence !== undefined) {
      assert.equal(segment.firstFrameSequence, segment.nameSequence, `${where}: ${name} starts at sequence ${segment.firstFrameSequence}`);
    } else {
      assert.ok(isLast, `${where}: ${name} holds no frame but is not the newest segment`);
      assert.equal(segment.nameSequence, head + 1, `${where}: the empty newest segment ${name} is not named for the next sequence`);
    }
    if (!isLast) assert.deepEqual(segment.end, { kind: 'clean', endOffset: segment.bytes }, `${where}: ${name} does not end with a whole frame`);
  });
  const last = segments[segments.length - 1];
  return {
    count: segments.length,
    lastEmpty: last !== undefined && last.bytes === 0,
    tornInNewSegment: last !== undefined && last.end.kind === 'torn' && last.end.endOffset === 0 && segments.length > 1,
    tornTail: last !== undefined && last.end.kind === 'torn',
  };
}

function rememberedOutcome(state: LedgerState, transactionId: string): { sequence: number; code: number } | undefined {
  const key = new Uint32Array(4);
  fingerprintTransactionId(transactionId, key);
  const slot = state.txns.find(key[0]!, key[1]!, key[2]!);
  return slot < 0 ? undefined : { sequence: state.txns.sequenceAt(slot), code: state.txns.codeAt(slot) };
}

/** The checks after a kill; returns what the next start must recover to. */
function checkDirectory(dataDir: string, acks: ReadonlyMap<string, Ack>, segmentBytesMax: number | undefined, where: string): { head: number; digest: string; fromSnapshot: boolean; segments: SegmentsSeen | undefined } {
  const recovered = recover(dataDir);
  const digest = stateDigest(recovered.state);
  assert.equal(stateDigest(recover(dataDir, { fromGenesis: true }).state), digest, `${where}: snapshot + tail and a full replay disagree`);
  const log = walkLog(dataDir);
  assert.equal(log.head, recovered.state.headSequence, `${where}: head`);
  const segments = segmentBytesMax === undefined ? undefined : checkSegments(log.segments, log.head, segmentBytesMax, where);

  for (const ack of acks.values()) {
    const logged = log.byId.get(ack.id);
    assert.ok(logged !== undefined, `${where}: acknowledged ${ack.id} (${codeOfWire(ack.code)} @${ack.sequence}) is not in the log`);
    assert.deepEqual([logged.sequence, logged.code], [ack.sequence, ack.code], `${where}: ${ack.id} logged differently than acknowledged`);
    const { command } = ack;
    const external = `@external:${currencyByNumeric(command.currencyNumeric)!.code}`;
    const expected = {
      kind: command.kind,
      from: command.kind === 'deposit' ? external : command.fromAccount,
      to: command.kind === 'withdrawal' ? external : command.toAccount,
      amount: command.amountMinor,
      currency: command.currencyNumeric,
    };
    assert.deepEqual({ kind: logged.kind, from: logged.from, to: logged.to, amount: logged.amount, currency: logged.currency }, expected, `${where}: ${ack.id} content`);
    assert.deepEqual(rememberedOutcome(recovered.state, ack.id), { sequence: ack.sequence, code: ack.code }, `${where}: ${ack.id} remembered differently`);
  }

  const sums = new Map<number, bigint>();
  for (const [accountId, { currency, balance }] of log.balances) {
    const index = recovered.state.accounts.findString(accountId);
    assert.ok(index >= 0, `${where}: ${accountId} missing after recovery`);
    assert.equal(recovered.state.balanceOf(index), balance, `${where}: balance of ${accountId} differs from the log`);
    if (!accountId.startsWith('@')) assert.ok(balance >= 0n, `${where}: ${accountId} is negative`);
    sums.set(currency, (sums.get(currency) ?? 0n) + balance);
  }
  for (const [currency, sum] of sums) assert.equal(sum, 0n, `${where}: currency ${currency} sums to ${sum}`);
  assert.equal(recovered.state.accountCount, log.balances.size, `${where}: account count`);
  return { head: recovered.state.headSequence, digest, fromSnapshot: recovered.snapshot !== undefined && recovered.replayedEvents > 0, segments };
}

function recordAcks(all: Map<string, Ack>, fresh: readonly Ack[], where: string): void {
  for (const ack of fresh) {
    const first = all.get(ack.id);
    if (first === undefined) all.set(ack.id, ack);
    else assert.deepEqual([ack.code, ack.sequence], [first.code, first.sequence], `${where}: ${ack.id} answered twice differently`);
  }
}

type CrashConfig = Readonly<{ seed: number; killsUnderLoad: number; earlyKills: number; segmentBytesMax?: number }>;

/**
 * Kills the child `killsUnderLoad` + `earlyKills` times on one data directory, checking it after
 * every kill, then restarts it in this process and runs `walletd verify`. Returns a summary.
 */
async function crashRun(config: CrashConfig): Promise<string> {
  const { seed, killsUnderLoad, earlyKills, segmentBytesMax } = config;
  const dir = tempDir('walletd-crash-');
  const dataDir = join(dir.path, 'data');
  const prng = new Prng(seed);
  const acks = new Map<string, Ack>();
  let unchecked: Ack[] = [];
  let expected: { head: number; digest: string } | undefined;
  let fromSnapshot = 0;
  let underLoad = 0;
  let early = 0;
  let apiChecked = 0;
  let rolloverKills = 0;
  let segments: SegmentsSeen | undefined;
  const rollover = { lastEmpty: 0, tornInNewSegment: 0, tornTail: 0 };
  const startedMs = performance.now();
  try {
    for (let run = 0; underLoad < killsUnderLoad || early < earlyKills; run++) {
      const killEarly = early < earlyKills && run % 6 === 3;
      // With small segments every other kill under load is timed to a rollover: at once or a few ms after the new file appears.
      const atRollover = !killEarly && segmentBytesMax !== undefined && run % 2 === 1;
      const kill: KillPlan = killEarly
        ? { at: 'start', afterMs: prng.below(400), rollovers: 0 }
        : atRollover
          ? { at: 'rollover', afterMs: prng.below(4), rollovers: 1 + prng.below(3) }
          : { at: 'load', afterMs: 20 + prng.below(400), rollovers: 0 };
      const older = [...acks.values()];
      const sample = Array.from({ length: Math.min(RECHECK_SAMPLE, older.length) }, () => older[prng.below(older.length)]!);
      const toCheck = [...unchecked, ...sample];
      const checkFile = join(dir.path, `check-${run}.txt`);
      writeFileSync(checkFile, toCheck.map((ack) => `${ackLine(ack)}\n`).join(''));

      const result = await runChild(dataDir, run, seed, checkFile, segmentBytesMax, kill);
      const when = kill.at === 'start' ? 'early' : kill.at === 'load' ? 'under load' : `rollover ${kill.rollovers}`;
      const where = `run ${run} (${when} kill after ${kill.afterMs} ms, seed ${seed}${segmentBytesMax === undefined ? '' : `, ${segmentBytesMax}-byte segments`})`;
      assert.equal(result.signal, 'SIGKILL', `${where}: the child ended by itself: ${result.stderr}`);
      assert.deepEqual(result.bad, [], `${where}: the child reported failures`);
      if (result.started !== undefined && expected !== undefined) {
        assert.deepEqual(result.started, expected, `${where}: the child recovered to another state than the parent checked`);
      }
      if (result.verified) {
        apiChecked += unchecked.length;
        unchecked = [];
      }
      if (killEarly) early++;
      else {
        assert.ok(result.reachedReady, `${where}: the child never got ready: ${result.stderr}`);
        if (atRollover) {
          assert.ok(result.rolloversSeen >= kill.rollovers, `${where}: killed after ${EVENT_WAIT_MS} ms without seeing rollover ${kill.rollovers} (saw ${result.rolloversSeen})`);
          rolloverKills++;
        } else {
          assert.ok(result.killedAfterSnapshot, `${where}: killed after ${EVENT_WAIT_MS} ms without a snapshot committed in the run`);
        }
        underLoad++;
      }
      const before = acks.size;
      recordAcks(acks, result.acks, where);
      unchecked.push(...[...acks.values()].slice(before));
      const checked = checkDirectory(dataDir, acks, segmentBytesMax, where);
      expected = { head: checked.head, digest: checked.digest };
      if (checked.fromSnapshot) fromSnapshot++;
      segments = checked.segments;
      if (segments?.lastEmpty === true) rollover.lastEmpty++;
      if (segments?.tornInNewSegment === true) rollover.tornInNewSegment++;
      if (segments?.tornTail === true) rollover.tornTail++;
    }

    const ok = [...acks.values()].filter((ack) => ack.code === Wire.ok).length;
    assert.ok(fromSnapshot >= killsUnderLoad / 2, `snapshots were not taken during the run: ${fromSnapshot} recoveries from one`);
    assert.ok(acks.size > killsUnderLoad * 10, `too little load to mean anything: ${acks.size} acknowledged`);
    assert.ok([...acks.values()].some((ack) => ack.code === Wire.insufficient_funds), 'no rejection was acknowledged');
    if (segments !== undefined) assert.ok(segments.count >= SEGMENTS_MIN, `the log rolled over too rarely: ${segments.count} segments`);

    await finalChecks(dataDir, acks, unchecked, prng, expected!, segmentBytesMax);
    const segmentNote =
      segments === undefined
        ? ''
        : `, ${segments.count} segments at the end; ${rolloverKills} kills timed to a rollover; kills left ${rollover.lastEmpty} empty newest segment(s), ${rollover.tornInNewSegment} torn first frame(s) of a new segment, ${rollover.tornTail} torn tail(s) in all`;
    return `${underLoad + early} kills, ${acks.size} acknowledged outcomes (${ok} ok), head ${expected?.head}, ${fromSnapshot} recoveries from a snapshot + tail, ${apiChecked} re-checked by restarted children${segmentNote}, ${((performance.now() - startedMs) / 1000).toFixed(1)} s`;
  } finally {
    dir.remove();
  }
}

test(`SIGKILL under concurrent load, ${KILLS_UNDER_LOAD} + ${EARLY_KILLS} times: every acknowledged transfer is in the log exactly once, invariants hold (seed ${SEED})`, async (t) => {
  t.diagnostic(await crashRun({ seed: SEED, killsUnderLoad: KILLS_UNDER_LOAD, earlyKills: EARLY_KILLS }));
});

test(`SIGKILL with ${SMALL_SEGMENT_BYTES / 1024} KiB log segments (a rollover every few group commits), ${SEGMENT_KILLS_UNDER_LOAD} + ${SEGMENT_EARLY_KILLS} times: the same checks, every segment whole and named right, verify passes (seed ${SEGMENT_SEED})`, async (t) => {
  t.diagnostic(await crashRun({ seed: SEGMENT_SEED, killsUnderLoad: SEGMENT_KILLS_UNDER_LOAD, earlyKills: SEGMENT_EARLY_KILLS, segmentBytesMax: SMALL_SEGMENT_BYTES }));
});

/** The parent's own restart: transfer(id), retries with the same and with other content, verify. */
async function finalChecks(dataDir: string, acks: ReadonlyMap<string, Ack>, unchecked: readonly Ack[], prng: Prng, expected: { head: number; digest: string }, segmentBytesMax: number | undefined): Promise<void> {
  const ledger = await openLedger({ dataDir, fsync: false, ...(segmentBytesMax === undefined ? {} : { segmentBytesMax }) });
  try {
    assert.equal(ledger.digest(), expected.digest);
    const all = [...acks.values()];
    const sample = [...unchecked, ...Array.from({ length: 300 }, () => all[prng.below(all.length)]!)];
    for (const ack of sample) {
      const view = await ledger.transfer(ack.id);
      assert.deepEqual([view?.code, view?.sequence], [codeOfWire(ack.code), ack.sequence], `final: transfer(${ack.id})`);
    }
    const retried = sample.slice(0, 200);
    const same = await ledger.submitTransfers({ bytes: encodeTransferBatch(retried.map((ack) => ack.command)), count: retried.length });
    retried.forEach((ack, index) => assert.deepEqual([same.codes[index], same.sequences[index]], [ack.code, ack.sequence], `final: retry of ${ack.id}`));
    const changed = await ledger.submitTransfers({ bytes: encodeTransferBatch(retried.map((ack) => ({ ...ack.command, amountMinor: ack.command.amountMinor + 1n }))), count: retried.length });
    assert.ok([...changed.codes].every((code) => code === Wire.idempotency_conflict), 'final: changed retries must conflict');
    assert.equal(ledger.digest(), expected.digest, 'final: retries changed the state');
  } finally {
    await ledger.close();
  }
  const verified = runWalletd(['verify', '--data-dir', dataDir]);
  assert.equal(verified.status, 0, `verify: ${verified.stdout}${verified.stderr}`);
}
