/** Median and p90 of a sample (nearest rank). */
export function summarize(samples: number[]): { median: number; p90: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
  return { median: at(0.5), p90: at(0.9), n: s.length };
}
