// The data-directory lock (src/engine/lock.ts): one process per data directory, a dead
// holder's lock taken over, a lock whose pid now names another process (pid reuse, another
// boot) taken over, and a takeover that two starters race for won by exactly one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataDirLockedError, lockDataDir, processStartTicks } from '../src/engine/lock.js';
import { tempDir } from './support/ledger.js';

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  assert.ok(child.pid !== undefined && child.pid > 0);
  return child.pid;
}

const hasProc = existsSync('/proc/self/stat') && existsSync('/proc/sys/kernel/random/boot_id');

/** The pid a lock file names (its first field). */
function lockPid(path: string): string {
  return readFileSync(path, 'utf8').trim().split(' ')[0] ?? '';
}

test('a held lock refuses a second taker; release removes it', () => {
  const dir = tempDir('walletd-lock-');
  try {
    const release = lockDataDir(dir.path);
    assert.equal(lockPid(join(dir.path, 'LOCK')), String(process.pid));
    if (hasProc) {
      const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      assert.equal(readFileSync(join(dir.path, 'LOCK'), 'utf8'), `${process.pid} ${bootId} ${processStartTicks('self')}\n`);
    }
    assert.throws(() => lockDataDir(dir.path), (error: unknown) => error instanceof DataDirLockedError && /in use by process/.test(error.message));
    release();
    assert.equal(existsSync(join(dir.path, 'LOCK')), false);
    lockDataDir(dir.path)();
  } finally {
    dir.remove();
  }
});

test('a lock left by a dead process, a damaged lock and a dead takeover are taken over', () => {
  for (const [lock, takeover] of [[`${deadPid()}\n`, undefined], ['garbage', undefined], [`${deadPid()}\n`, `${deadPid()}\n`]] as const) {
    const dir = tempDir('walletd-lock-');
    try {
      writeFileSync(join(dir.path, 'LOCK'), lock);
      if (takeover !== undefined) writeFileSync(join(dir.path, 'LOCK.takeover'), takeover);
      const release = lockDataDir(dir.path);
      assert.equal(lockPid(join(dir.path, 'LOCK')), String(process.pid), `${lock} ${takeover}`);
      assert.equal(existsSync(join(dir.path, 'LOCK.takeover')), false);
      release();
    } finally {
      dir.remove();
    }
  }
});

test('a live pid is the owner only if it started when the lock says, in this boot', { skip: hasProc ? false : 'needs /proc (Linux)' }, async () => {
  // A live process that is not the lock's writer stands for a reused pid.
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  try {
    const pid = child.pid;
    assert.ok(pid !== undefined);
    await new Promise((resolve) => child.once('spawn', resolve));
    const startTicks = processStartTicks(pid);
    assert.ok(startTicks !== undefined && /^\d+$/.test(startTicks));
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const otherBoot = bootId.replace(/[0-9a-f]/, (digit) => (digit === '0' ? '1' : '0'));
    const cases = [
      { lock: `${pid} ${bootId} ${startTicks}\n`, taken: false, why: 'the same process' },
      { lock: `${pid}\n`, taken: false, why: 'a pid-only lock (older walletd) whose pid runs' },
      { lock: `${pid} ${bootId} ${BigInt(startTicks) + 1n}\n`, taken: true, why: 'the pid started at another time' },
      { lock: `${pid} ${otherBoot} ${startTicks}\n`, taken: true, why: 'a lock from another boot' },
    ];
    for (const { lock, taken, why } of cases) {
      const dir = tempDir('walletd-lock-');
      try {
        writeFileSync(join(dir.path, 'LOCK'), lock);
        if (taken) {
          const release = lockDataDir(dir.path);
          assert.equal(lockPid(join(dir.path, 'LOCK')), String(process.pid), why);
          release();
        } else {
          assert.throws(() => lockDataDir(dir.path), (error: unknown) => error instanceof DataDirLockedError && error.message.includes(`process ${pid}`), why);
          assert.equal(readFileSync(join(dir.path, 'LOCK'), 'utf8'), lock, why);
        }
      } finally {
        dir.remove();
      }
    }
  } finally {
    child.kill('SIGKILL');
  }
});

test('starters racing to take over one stale lock: exactly one wins', async () => {
  const lockModule = new URL('../src/engine/lock.js', import.meta.url).href;
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = tempDir('walletd-lock-');
    try {
      writeFileSync(join(dir.path, 'LOCK'), `${deadPid()}\n`);
      // Every child waits for the same instant, so their takeovers overlap.
      const startAt = Date.now() + 700;
      const script = `
        const { lockDataDir } = await import(${JSON.stringify(lockModule)});
        while (Date.now() < ${startAt}) {}
        try { lockDataDir(${JSON.stringify(dir.path)}); console.log('won'); setTimeout(() => {}, 1000); }
        catch (error) { console.log(error.name); }`;
      const outcomes = await Promise.all(
        Array.from(
          { length: 6 },
          () =>
            new Promise<string>((resolve, reject) => {
              const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
              let output = '';
              child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
              child.on('error', reject);
              child.on('exit', () => resolve(output.trim()));
            }),
        ),
      );
      assert.equal(outcomes.filter((outcome) => outcome === 'won').length, 1, outcomes.join(', '));
      assert.ok(outcomes.every((outcome) => outcome === 'won' || outcome === 'DataDirLockedError'), outcomes.join(', '));
    } finally {
      dir.remove();
    }
  }
});
