/**
 * Progress for long offline work: a bar with a rate on a terminal, a plain line every few
 * seconds otherwise (logs stay readable), nothing for short runs.
 */
import cliProgress from 'cli-progress';

const PLAIN_EVERY_MS = 5_000;

export type Progress = { update: (doneBytes: number, totalBytes: number) => void; stop: () => void };

export function startProgress(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  const started = Date.now();
  if (stream.isTTY === true) {
    const bar = new cliProgress.SingleBar(
      { format: `${label} [{bar}] {percentage}% | {rate} MB/s | eta {eta}s`, stream, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    let begun = false;
    return {
      update: (done, total) => {
        if (!begun) {
          bar.start(Math.max(1, total), 0, { rate: '0.0' });
          begun = true;
        }
        bar.setTotal(Math.max(1, total));
        bar.update(done, { rate: rateMbPerSecond(done, started) });
      },
      stop: () => begun && bar.stop(),
    };
  }
  let lastMs = started;
  return {
    update: (done, total) => {
      const now = Date.now();
      if (now - lastMs < PLAIN_EVERY_MS) return;
      lastMs = now;
      const percent = total > 0 ? ((100 * done) / total).toFixed(1) : '100.0';
      stream.write(`${label}: ${percent}% (${rateMbPerSecond(done, started)} MB/s)\n`);
    },
    stop: () => undefined,
  };
}

function rateMbPerSecond(bytes: number, startedMs: number): string {
  const seconds = Math.max(0.001, (Date.now() - startedMs) / 1000);
  return (bytes / 1e6 / seconds).toFixed(1);
}
