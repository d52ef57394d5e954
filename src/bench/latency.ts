/**
 * Batch latency in microseconds, kept in an HdrHistogram (3 significant digits), so p99.9 and
 * max over millions of batches cost a few kilobytes and no sorting.
 */
import * as hdr from 'hdr-histogram-js';

/** Latencies above this are clamped (and show as the maximum): 10 minutes. */
const LATENCY_US_MAX = 600_000_000;
const CHART_PERCENTILES = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100] as const;

export type LatencySummary = Readonly<{
  batches: number;
  p50Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  meanUs: number;
  /** [percentile, microseconds] pairs for the chart. */
  distribution: ReadonlyArray<readonly [number, number]>;
}>;

export class LatencyRecorder {
  private readonly histogram = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: LATENCY_US_MAX,
    numberOfSignificantValueDigits: 3,
    autoResize: false,
  });

  recordUs(latencyUs: number): void {
    const clamped = Math.min(Math.max(1, Math.round(latencyUs)), LATENCY_US_MAX);
    this.histogram.recordValue(clamped);
  }

  summary(): LatencySummary {
    const h = this.histogram;
    const at = (percentile: number): number => (h.totalCount === 0 ? 0 : h.getValueAtPercentile(percentile));
    return {
      batches: h.totalCount,
      p50Us: at(50),
      p99Us: at(99),
      p999Us: at(99.9),
      maxUs: h.totalCount === 0 ? 0 : h.maxValue,
      meanUs: h.totalCount === 0 ? 0 : Math.round(h.mean),
      distribution: CHART_PERCENTILES.map((percentile) => [percentile, at(percentile)] as const),
    };
  }
}
