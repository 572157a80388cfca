/** The nearest-rank `q` quantile of samples sorted in ascending order (NaN for none). */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

/** Median and p90 of a sample (nearest rank). */
export function summarize(samples: number[]): { median: number; p90: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), p90: quantile(s, 0.9), n: s.length };
}
