// The data-directory lock (src/engine/lock.ts): one process per data directory, a dead
// holder's lock taken over, and a takeover that two starters race for won by exactly one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataDirLockedError, lockDataDir } from '../src/engine/lock.js';
import { tempDir } from './support/ledger.js';

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', '0']);
  assert.ok(child.pid !== undefined && child.pid > 0);
  return child.pid;
}

test('a held lock refuses a second taker; release removes it', () => {
  const dir = tempDir('walletd-lock-');
  try {
    const release = lockDataDir(dir.path);
    assert.equal(readFileSync(join(dir.path, 'LOCK'), 'utf8').trim(), String(process.pid));
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
      assert.equal(readFileSync(join(dir.path, 'LOCK'), 'utf8').trim(), String(process.pid), `${lock} ${takeover}`);
      assert.equal(existsSync(join(dir.path, 'LOCK.takeover')), false);
      release();
    } finally {
      dir.remove();
    }
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
