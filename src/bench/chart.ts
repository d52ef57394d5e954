/**
 * The bench's chart as a hand-written SVG: throughput over time (left) and the batch latency
 * distribution (right), one line per target. Both y axes are logarithmic, because walletd and
 * the PostgreSQL ledger differ by orders of magnitude and both must stay readable.
 */
import type { RunMeasurement } from './runner.js';

const PANEL_WIDTH = 440;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 50 } as const;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'] as const;
/** The latency panel's x axis: 0, 90, 99, 99.9, 99.99 %, then max. */
const NINES_MAX = 4;
const LEGEND_ROW_HEIGHT = 18;

type Point = readonly [number, number];
type Series = Readonly<{ name: string; color: string; points: readonly Point[] }>;
type Axis = Readonly<{ min: number; max: number; ticks: ReadonlyArray<readonly [number, string]> }>;

/** One line per run; `label` names it in the legend (the target, and the distribution when several ran). */
export type ChartLine = Readonly<{ label: string; run: RunMeasurement }>;

export function renderChart(title: string, lines: readonly ChartLine[]): string {
  const colored = lines.map(({ label, run }, index) => ({ label, run, color: COLORS[index % COLORS.length] ?? '#000' }));
  const throughput: Series[] = colored.map(({ label, run, color }) => ({
    name: label,
    color,
    // Intervals with no answer (a target's batches are still in flight) sit on the axis floor.
    points: run.throughput.map((p) => [p.atMs / 1000, p.transfersPerSecond] as const),
  }));
  const latency: Series[] = colored.map(({ label, run, color }) => ({
    name: label,
    color,
    points: run.latency.distribution.map(([percentile, us]) => [ninesOf(percentile), Math.max(us, 1) / 1000] as const),
  }));
  const secondsMax = Math.max(1, ...throughput.flatMap((s) => s.points.map((p) => p[0])));
  const width = 2 * (PANEL_WIDTH + MARGIN.left + MARGIN.right);
  const legendTop = PANEL_HEIGHT + MARGIN.top + MARGIN.bottom;
  const height = legendTop + LEGEND_ROW_HEIGHT * lines.length + 10;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(title)}</text>`,
    panel(0, 'Throughput over time', 'seconds', 'transfers/s (log)', throughput, linearAxis(0, secondsMax), logAxis(valuesOf(throughput))),
    panel(
      PANEL_WIDTH + MARGIN.left + MARGIN.right,
      'Batch latency distribution',
      'percentile',
      'ms (log)',
      latency,
      percentileAxis(),
      logAxis(valuesOf(latency)),
    ),
    legend(colored.map(({ label, run, color }) => ({ name: `${label} (${run.durability})`, color })), legendTop),
    '</svg>',
  ];
  return parts.join('\n');
}

function panel(offsetX: number, title: string, xLabel: string, yLabel: string, series: readonly Series[], x: Axis, y: Axis): string {
  const left = offsetX + MARGIN.left;
  const top = MARGIN.top;
  const toX = (value: number): number => left + ((value - x.min) / (x.max - x.min || 1)) * PANEL_WIDTH;
  const toY = (value: number): number => {
    const exponent = value > 0 ? Math.max(y.min, Math.log10(value)) : y.min;
    return top + PANEL_HEIGHT - ((exponent - y.min) / (y.max - y.min || 1)) * PANEL_HEIGHT;
  };
  const out = [
    `<text x="${left + PANEL_WIDTH / 2}" y="${top - 10}" text-anchor="middle" font-weight="bold">${title}</text>`,
    `<rect x="${left}" y="${top}" width="${PANEL_WIDTH}" height="${PANEL_HEIGHT}" fill="none" stroke="#888"/>`,
    `<text x="${left + PANEL_WIDTH / 2}" y="${top + PANEL_HEIGHT + 36}" text-anchor="middle">${xLabel}</text>`,
    `<text transform="translate(${offsetX + 14} ${top + PANEL_HEIGHT / 2}) rotate(-90)" text-anchor="middle">${yLabel}</text>`,
  ];
  for (const [value, label] of x.ticks) {
    out.push(`<line x1="${toX(value)}" y1="${top + PANEL_HEIGHT}" x2="${toX(value)}" y2="${top + PANEL_HEIGHT + 5}" stroke="#888"/>`);
    out.push(`<text x="${toX(value)}" y="${top + PANEL_HEIGHT + 18}" text-anchor="middle">${label}</text>`);
  }
  for (const [exponent, label] of y.ticks) {
    const yy = toY(10 ** exponent);
    out.push(`<line x1="${left}" y1="${yy}" x2="${left + PANEL_WIDTH}" y2="${yy}" stroke="#eee"/>`);
    out.push(`<text x="${left - 6}" y="${yy + 4}" text-anchor="end">${label}</text>`);
  }
  for (const s of series) {
    if (s.points.length === 0) continue;
    const path = s.points.map(([px, py]) => `${toX(px).toFixed(1)},${toY(py).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
  }
  return out.join('\n');
}

/** One row per target: durability descriptions are long. */
function legend(entries: ReadonlyArray<{ name: string; color: string }>, top: number): string {
  return entries
    .map((entry, index) => {
      const y = top + (index + 1) * LEGEND_ROW_HEIGHT;
      return `<rect x="${MARGIN.left}" y="${y - 10}" width="12" height="12" fill="${entry.color}"/><text x="${MARGIN.left + 18}" y="${y}">${escapeXml(entry.name)}</text>`;
    })
    .join('\n');
}

/** 90 % → 1, 99 % → 2, 99.9 % → 3; the maximum (100 %) sits one step past the last nine. */
export function ninesOf(percentile: number): number {
  if (percentile >= 100) return NINES_MAX + 1;
  if (percentile <= 0) return 0;
  return Math.min(NINES_MAX, -Math.log10(1 - percentile / 100));
}

function percentileAxis(): Axis {
  return { min: 0, max: NINES_MAX + 1, ticks: [[0, '0'], [1, '90'], [2, '99'], [3, '99.9'], [4, '99.99'], [5, 'max']] };
}

function linearAxis(min: number, max: number): Axis {
  const step = niceStep((max - min) / 5);
  const ticks: Array<readonly [number, string]> = [];
  for (let value = min; value <= max + 1e-9; value += step) ticks.push([value, String(Math.round(value * 10) / 10)]);
  return { min, max, ticks };
}

/** Axis over log10 of the values, widened to whole powers of ten. */
function logAxis(values: readonly number[]): Axis {
  const positive = values.filter((v) => v > 0);
  const low = Math.floor(Math.log10(Math.min(...positive, 1)));
  const high = Math.max(low + 1, Math.ceil(Math.log10(Math.max(...positive, 10))));
  const ticks: Array<readonly [number, string]> = [];
  for (let exponent = low; exponent <= high; exponent++) ticks.push([exponent, formatPower(exponent)]);
  return { min: low, max: high, ticks };
}

function formatPower(exponent: number): string {
  const value = 10 ** exponent;
  if (value >= 1e6) return `${value / 1e6}M`;
  if (value >= 1e3) return `${value / 1e3}k`;
  return String(Number(value.toPrecision(1)));
}

function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

function valuesOf(series: readonly Series[]): number[] {
  return series.flatMap((s) => s.points.map((p) => p[1]));
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c] ?? c);
}
