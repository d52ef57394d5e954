/**
 * CPU time and resident memory of server processes, read from /proc (Linux), so the bench can
 * say what the server cost without instrumenting it.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

export type ProcessSample = Readonly<{ cpuSeconds: number; rssBytes: number }>;

let clockTicksPerSecond: number | undefined;
let pageBytes: number | undefined;

function systemConfig(name: string, fallback: number): number {
  try {
    const value = Number(execFileSync('getconf', [name], { encoding: 'utf8' }).trim());
    return Number.isInteger(value) && value > 0 ? value : fallback;
  } catch {
    return fallback; // getconf missing: Linux's usual values
  }
}

/** utime + stime and RSS of one process; undefined once it has exited. */
export function sampleProcess(pid: number): ProcessSample | undefined {
  clockTicksPerSecond ??= systemConfig('CLK_TCK', 100);
  pageBytes ??= systemConfig('PAGESIZE', 4096);
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime, stime are fields 14, 15; rss (pages) is field 24.
  const utimeTicks = Number(fields[11]);
  const stimeTicks = Number(fields[12]);
  const rssPages = Number(fields[21]);
  return { cpuSeconds: (utimeTicks + stimeTicks) / clockTicksPerSecond, rssBytes: rssPages * pageBytes };
}

/** Sum over several processes (PostgreSQL runs one per connection plus helpers). */
export function sampleProcesses(pids: readonly number[]): ProcessSample {
  let cpuSeconds = 0;
  let rssBytes = 0;
  for (const pid of pids) {
    const sample = sampleProcess(pid);
    if (sample === undefined) continue;
    cpuSeconds += sample.cpuSeconds;
    rssBytes += sample.rssBytes;
  }
  return { cpuSeconds, rssBytes };
}

/** Pids of every process whose command name is `name` (e.g. all "postgres" processes). */
export function pidsByName(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'latin1').trim() === name) pids.push(Number(entry));
    } catch {
      // The process exited between readdir and read.
    }
  }
  return pids;
}
